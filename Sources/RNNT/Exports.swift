// What an app's `import STTKit` brings besides this module's own API: audio files and resampling (STTAudio) and the
// loader's error type (STTWeightLoader). Everything else in those modules is `package`.
@_exported import STTAudio
@_exported import enum STTWeightLoader.LoaderError
