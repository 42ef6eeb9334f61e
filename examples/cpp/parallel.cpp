// parallel MODEL_DIR FILE.wav [STREAMS]
//
// A multi-threaded host: loads the model once and runs STREAMS streams on it at the same time (4 by default), each
// on its own thread pushing the whole file in 100 ms blocks at the file's rate. Every stream must give the same text:
// it is printed once and the exit status is 0; a difference or an error exits 1 (2 for usage).
//
//   c++ -std=c++17 parallel.cpp $(pkg-config --cflags --libs stt) -pthread -o parallel
#include <algorithm>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../c/wav.h"
#include "stt.hpp"

namespace {

struct Audio {
    std::vector<float> samples;
    int sample_rate = 0;
};

Audio read_wav(const char *path) {
    wav_file wav;
    char error[256];
    if (wav_open(&wav, path, error, sizeof error) != 0) throw std::runtime_error(std::string(path) + ": " + error);
    Audio audio;
    audio.sample_rate = wav.sample_rate;
    audio.samples.resize(static_cast<std::size_t>(wav.frames));
    long read = wav_read(&wav, audio.samples.data(), audio.samples.size());
    std::string failure = read < 0 ? wav.error : "";
    wav_close(&wav);
    if (read < 0) throw std::runtime_error(std::string(path) + ": " + failure);
    return audio;
}

std::string transcribe(const stt::Model &model, const Audio &audio) {
    stt::Stream stream(model);
    const std::size_t block = audio.sample_rate >= 10 ? static_cast<std::size_t>(audio.sample_rate / 10) : 1;
    for (std::size_t start = 0; start < audio.samples.size(); start += block) {
        const std::size_t count = std::min(block, audio.samples.size() - start);
        stream.push(audio.samples.data() + start, count, audio.sample_rate);
    }
    stream.finish();
    return stream.text();
}

} // namespace

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4) {
        std::cerr << "usage: parallel MODEL_DIR FILE.wav [STREAMS]\n";
        return 2;
    }
    const int streams = argc == 4 ? std::atoi(argv[3]) : 4;
    if (streams < 1 || streams > 256) {
        std::cerr << "parallel: STREAMS must be 1 ... 256\n";
        return 2;
    }
    try {
        const Audio audio = read_wav(argv[2]);
        const stt::Model model(argv[1]);
        std::vector<std::string> texts(static_cast<std::size_t>(streams));
        std::vector<std::exception_ptr> errors(static_cast<std::size_t>(streams));
        std::vector<std::thread> threads;
        for (std::size_t i = 0; i < texts.size(); i++) {
            threads.emplace_back([&, i] {
                try {
                    texts[i] = transcribe(model, audio);
                } catch (...) {
                    errors[i] = std::current_exception();
                }
            });
        }
        for (std::thread &thread : threads) thread.join();
        for (const std::exception_ptr &error : errors)
            if (error) std::rethrow_exception(error);
        for (std::size_t i = 1; i < texts.size(); i++) {
            if (texts[i] != texts[0]) {
                std::cerr << "parallel: stream " << i << " gave \"" << texts[i] << "\", stream 0 \"" << texts[0] << "\"\n";
                return 1;
            }
        }
        std::cerr << streams << " streams on one model, one thread each, gave the same text\n";
        std::cout << texts[0] << "\n";
        return 0;
    } catch (const std::exception &error) {
        std::cerr << "parallel: " << error.what() << "\n";
        return 1;
    }
}
