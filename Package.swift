// swift-tools-version:6.0
import PackageDescription

// One library product, STTKit: `import STTKit` gives an app the model, streams, options, results, errors, audio
// files and the streaming resampler. The modules behind it keep the directories of the design (Sources/Tensor,
// Sources/WeightLoader, Sources/Audio, Sources/Conformer, Sources/RNNT) under names that cannot collide with another
// package's targets (`Audio`, `Tensor`, …); their internals are `package`, not public.
// STT_EMULATE_X86=1 builds the kernels on SIMDe's portable intrinsics with every x86 feature reported present
// (Sources/CKernels/simd.h; needs libsimde-dev): the tests then run the AVX-512 variants on any CPU, slowly.
let kernelSettings: [CSetting] = Context.environment["STT_EMULATE_X86"] == nil ? [] : [.define("CK_EMULATE_X86")]

let package = Package(
    name: "stt",
    products: [
        .library(name: "STTKit", targets: ["STTKit"]),
        .executable(name: "stt", targets: ["stt"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.81.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CSTTFFTW", path: "Sources/CFFTW", pkgConfig: "fftw3f",
            providers: [.apt(["libfftw3-dev"])]),
        .target(name: "CSTTKernels", path: "Sources/CKernels", cSettings: kernelSettings),
        .target(name: "STTTensor", dependencies: ["CSTTFFTW", "CSTTKernels"], path: "Sources/Tensor"),
        .target(name: "STTWeightLoader", dependencies: ["STTTensor"], path: "Sources/WeightLoader"),
        .target(name: "STTAudio", dependencies: ["STTTensor", "CSTTFFTW"], path: "Sources/Audio"),
        .target(name: "STTConformer", dependencies: ["STTTensor", "STTWeightLoader"], path: "Sources/Conformer"),
        // The front door: RNN-T/CTC decoding and the app API (SpeechModel, TranscriptionStream, results).
        .target(
            name: "STTKit", dependencies: ["STTConformer", "STTAudio", "STTWeightLoader", "STTTensor"],
            path: "Sources/RNNT"),
        .executableTarget(
            name: "stt",
            dependencies: [
                "STTKit", "STTConformer", "STTWeightLoader", "STTTensor", "STTServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Sources/stt"),
        // `stt serve`: a WebSocket server speaking sherpa-onnx's online protocol (SwiftNIO), and its client.
        .target(
            name: "STTServer",
            dependencies: [
                "STTKit",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"), .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio")],
            path: "Sources/Server"),
        // Development tools behind scripts/bench and scripts/parity; not part of the product.
        .executableTarget(
            name: "stt-dev",
            dependencies: [
                "STTKit", "STTConformer", "STTWeightLoader", "STTTensor", "STTServer",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Sources/stt-dev"),
        // Fuzzing: the harnesses and mutators, the driver behind scripts/fuzz, and the tests that replay every
        // committed finding (Tests/FuzzRegressions) and run a short fuzz of each target. Not part of the product.
        .target(
            name: "STTFuzz", dependencies: ["STTKit", "STTConformer", "STTAudio", "STTWeightLoader", "STTTensor"],
            path: "Sources/Fuzz"),
        .executableTarget(
            name: "stt-fuzz",
            dependencies: ["STTFuzz", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Sources/stt-fuzz"),
        // Test-only: the committed fixtures and their references.
        .target(name: "STTTestFixtures", dependencies: ["STTTensor", "STTConformer"], path: "Tests/TestFixtures"),
        // Test-only: counts heap allocations of the calling thread (malloc interposed in the test binary, or the
        // sanitizer's allocation hook under ASan and TSan).
        .target(name: "STTMallocCounter", path: "Tests/MallocCounter"),
        .testTarget(
            name: "WeightLoaderTests", dependencies: ["STTWeightLoader", "STTTensor", "STTTestFixtures"],
            path: "Tests/WeightLoaderTests"),
        .testTarget(name: "STTTests", dependencies: ["stt", "stt-dev", "STTTestFixtures"], path: "Tests/STTTests"),
        .testTarget(
            name: "AudioTests", dependencies: ["STTAudio", "STTTensor", "STTTestFixtures"], path: "Tests/AudioTests"),
        .testTarget(
            name: "TensorTests", dependencies: ["STTTensor", "CSTTKernels"], path: "Tests/TensorTests"),
        .testTarget(
            name: "ConformerTests",
            dependencies: ["STTConformer", "STTWeightLoader", "STTTensor", "STTMallocCounter", "STTTestFixtures"],
            path: "Tests/ConformerTests"),
        .testTarget(name: "FuzzTests", dependencies: ["STTFuzz", "STTTestFixtures"], path: "Tests/FuzzTests"),
        .testTarget(
            name: "RNNTTests",
            dependencies: ["STTKit", "STTConformer", "STTWeightLoader", "STTTensor", "STTTestFixtures", "STTMallocCounter"],
            path: "Tests/RNNTTests"),
        .testTarget(
            name: "ServerTests",
            dependencies: [
                "stt", "STTServer", "STTKit", "STTTestFixtures", .product(name: "NIOWebSocket", package: "swift-nio")],
            path: "Tests/ServerTests"),
    ],
    swiftLanguageModes: [.v6]
)

// The C API for C and C++ hosts (libstt.so and stt.h; scripts/install-c installs them with stt.pc): the header and
// the C half (version, per-thread error message) in CSTT, the entry points in STTCAPI, each checked by the compiler
// against its declaration in stt.h (`@c @implementation`, Swift 6.3). Older compilers build the package without it.
#if compiler(>=6.3)
package.products.append(.library(name: "sttc", type: .dynamic, targets: ["STTCAPI"]))
package.targets += [
    .target(name: "CSTT", path: "Sources/CAPI/C"),
    .target(name: "STTCAPI", dependencies: ["CSTT", "STTKit", "STTAudio"], path: "Sources/CAPI/Swift"),
    .testTarget(
        name: "CAPITests", dependencies: ["STTCAPI", "CSTT", "STTKit", "STTTestFixtures"], path: "Tests/CAPITests"),
]
#endif
