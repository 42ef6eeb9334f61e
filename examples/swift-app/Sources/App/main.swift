import STTKit

let model = try SpeechModel(folder: "models/small/la13")              // load once, share across threads
let stream = try TranscriptionStream(model: model)                     // defaults fit the model
let audio = try WAVFile(path: "samples/green-apples.wav")              // stands in for a microphone
let block = audio.sampleRate / 10                                      // 100 ms blocks, at the file's own rate
for start in stride(from: 0, to: audio.samples.count, by: block) {
    let samples = Array(audio.samples[start..<min(start + block, audio.samples.count)])
    for token in try stream.push(samples, sampleRate: audio.sampleRate) {
        print(token.piece, token.start)                                // final as soon as the look-ahead allows
    }
}
stream.finish()
print(stream.text)                                                     // "my brother likes green apples"
for word in stream.words { print(word.text, word.start, word.end) }    // seconds
