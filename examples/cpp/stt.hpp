// stt.hpp: a header-only C++17 wrapper of the stt C API (stt.h). Model and Stream own their handles (move-only,
// released in their destructors); a failing call throws stt::Error, which carries the status and the library's
// one-line message. Thread rules are the C API's: one Model may be shared by any number of threads (its methods are
// const), each Stream is used by one thread at a time.
//
//   stt::Model model("models/small/la13");
//   stt::Stream stream(model);
//   stream.push(samples, 48000);          // std::vector<float> or <int16_t>, any rate
//   std::cerr << stream.read_new_text();  // what became final
//   stream.finish();
//   std::cout << stream.text() << "\n";
#ifndef STT_HPP
#define STT_HPP

#include <stt.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace stt {

/// A failed call: the C API's status and its message.
class Error : public std::runtime_error {
public:
    Error(stt_status status, const char *message) : std::runtime_error(message), status_(status) {}
    stt_status status() const noexcept { return status_; }

private:
    stt_status status_;
};

namespace detail {

inline void check(stt_status status) {
    if (status != STT_OK) throw Error(status, stt_last_error());
}

struct Free {
    void operator()(void *pointer) const noexcept { stt_free(pointer); }
};

/// Takes ownership of a string the library returned.
inline std::string take(char *text) {
    std::unique_ptr<char, Free> owned(text);
    return text ? std::string(text) : std::string();
}

} // namespace detail

/// A recognized word; times in seconds from the start of the stream.
struct Word {
    std::string text;
    double start;
    double end;
    float logprob;
};

/// A recognized token (a SentencePiece piece or a character).
struct Token {
    std::string piece;
    int id;
    long long frame;
    double start;
    double end;
    float logprob;
};

/// An utterance closed by Stream::end_utterance.
struct Utterance {
    long long index;
    double start;
    double end;
    std::string text;
    std::vector<Word> words;
};

namespace detail {

inline std::vector<Word> words(const stt_word *words, std::size_t count) {
    std::vector<Word> result;
    result.reserve(count);
    for (std::size_t i = 0; i < count; i++)
        result.push_back(Word{words[i].text, words[i].start, words[i].end, words[i].logprob});
    return result;
}

} // namespace detail

/// A loaded model folder. Share one across threads: streams take it by const reference.
class Model {
public:
    /// Loads a folder with `threads` threads per weight product (1 ... 64).
    explicit Model(const std::string &folder, int threads = 1) {
        stt_model_options options;
        detail::check(stt_model_options_init(&options));
        options.threads = threads;
        stt_model *model = nullptr;
        detail::check(stt_model_load(folder.c_str(), &options, &model));
        handle_.reset(model);
    }

    /// Look-aheads, decoders and sizes of the model.
    stt_model_info info() const {
        stt_model_info info;
        info.struct_size = sizeof info;
        detail::check(stt_model_get_info(handle_.get(), &info));
        return info;
    }

    const stt_model *get() const noexcept { return handle_.get(); }

private:
    struct Release {
        void operator()(stt_model *model) const noexcept { stt_model_free(model); }
    };
    std::unique_ptr<stt_model, Release> handle_;
};

/// One live stream on a model. It keeps the model alive, so it may outlive the Model object.
class Stream {
public:
    /// Defaults: the model's look-ahead and decoder, native convention, endpointing off.
    static stt_stream_options default_options() {
        stt_stream_options options;
        detail::check(stt_stream_options_init(&options));
        return options;
    }

    explicit Stream(const Model &model) : Stream(model, default_options()) {}

    Stream(const Model &model, const stt_stream_options &options) {
        stt_stream *stream = nullptr;
        detail::check(stt_stream_create(model.get(), &options, &stream));
        handle_.reset(stream);
    }

    /// Mono samples in [-1, 1] at any rate.
    void push(const float *samples, std::size_t count, int sample_rate) {
        detail::check(stt_stream_push_f32(handle_.get(), samples, count, sample_rate));
    }
    void push(const std::vector<float> &samples, int sample_rate) { push(samples.data(), samples.size(), sample_rate); }

    /// Mono 16-bit samples at any rate.
    void push(const std::int16_t *samples, std::size_t count, int sample_rate) {
        detail::check(stt_stream_push_s16(handle_.get(), samples, count, sample_rate));
    }
    void push(const std::vector<std::int16_t> &samples, int sample_rate) {
        push(samples.data(), samples.size(), sample_rate);
    }

    /// Text that became final since the last call ("" when none).
    std::string read_new_text() {
        char *text = nullptr;
        detail::check(stt_stream_read_new_text(handle_.get(), &text));
        return detail::take(text);
    }

    /// The current utterance's text so far.
    std::string text() {
        char *text = nullptr;
        detail::check(stt_stream_text(handle_.get(), &text));
        return detail::take(text);
    }

    /// The current utterance's words so far.
    std::vector<Word> words() {
        stt_word *words = nullptr;
        std::size_t count = 0;
        detail::check(stt_stream_words(handle_.get(), &words, &count));
        std::unique_ptr<stt_word, detail::Free> owned(words);
        return detail::words(words, count);
    }

    /// The current utterance's tokens so far.
    std::vector<Token> tokens() {
        stt_token *tokens = nullptr;
        std::size_t count = 0;
        detail::check(stt_stream_tokens(handle_.get(), &tokens, &count));
        std::unique_ptr<stt_token, detail::Free> owned(tokens);
        std::vector<Token> result;
        result.reserve(count);
        for (std::size_t i = 0; i < count; i++) {
            const stt_token &t = tokens[i];
            result.push_back(Token{t.piece, t.id, static_cast<long long>(t.frame), t.start, t.end, t.logprob});
        }
        return result;
    }

    /// Seconds of audio pushed so far.
    double duration() {
        double seconds = 0;
        detail::check(stt_stream_duration(handle_.get(), &seconds));
        return seconds;
    }

    /// Whether an endpoint rule holds for the current utterance (needs endpointing in the options).
    bool is_endpoint() {
        int endpoint = 0;
        detail::check(stt_stream_is_endpoint(handle_.get(), &endpoint));
        return endpoint != 0;
    }

    /// Closes the current utterance and returns it; decoding goes on.
    Utterance end_utterance() {
        stt_utterance *utterance = nullptr;
        detail::check(stt_stream_end_utterance(handle_.get(), &utterance));
        std::unique_ptr<stt_utterance, detail::Free> owned(utterance);
        return Utterance{static_cast<long long>(utterance->index), utterance->start, utterance->end, utterance->text,
                         detail::words(utterance->words, utterance->word_count)};
    }

    /// Ends the audio; every word becomes final.
    void finish() { detail::check(stt_stream_finish(handle_.get())); }

    /// Starts again from zero.
    void reset() { detail::check(stt_stream_reset(handle_.get())); }

    stt_stream *get() const noexcept { return handle_.get(); }

private:
    struct Release {
        void operator()(stt_stream *stream) const noexcept { stt_stream_free(stream); }
    };
    std::unique_ptr<stt_stream, Release> handle_;
};

} // namespace stt

#endif
