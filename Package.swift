// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "stt",
    products: [
        .executable(name: "stt", targets: ["stt"]),
        .library(name: "RNNT", targets: ["RNNT"]),
        .library(name: "Conformer", targets: ["Conformer"]),
        .library(name: "WeightLoader", targets: ["WeightLoader"]),
        .library(name: "Tensor", targets: ["Tensor"]),
        .library(name: "Audio", targets: ["Audio"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(
            name: "CFFTW", path: "Sources/CFFTW", pkgConfig: "fftw3f",
            providers: [.apt(["libfftw3-dev"])]),
        .target(name: "CKernels"),
        .target(name: "Tensor", dependencies: ["CBLAS", "CFFTW", "CKernels"]),
        .target(name: "WeightLoader", dependencies: ["Tensor"]),
        .target(name: "Audio", dependencies: ["Tensor", "CFFTW"]),
        .target(name: "Conformer", dependencies: ["Tensor", "WeightLoader"]),
        .target(name: "RNNT", dependencies: ["Conformer", "Audio", "WeightLoader", "Tensor"]),
        .executableTarget(
            name: "stt",
            dependencies: [
                "RNNT", "Conformer", "WeightLoader", "Tensor",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        // Test-only: the committed fixtures and their references.
        .target(name: "TestFixtures", dependencies: ["Tensor"], path: "Tests/TestFixtures"),
        .testTarget(
            name: "WeightLoaderTests", dependencies: ["WeightLoader", "Tensor", "TestFixtures"],
            path: "Tests/WeightLoaderTests"),
        .testTarget(name: "STTTests", dependencies: ["stt"], path: "Tests/STTTests"),
        .testTarget(
            name: "AudioTests", dependencies: ["Audio", "Tensor", "TestFixtures"], path: "Tests/AudioTests"),
        .testTarget(
            name: "TensorTests", dependencies: ["Tensor", "CKernels"], path: "Tests/TensorTests"),
        // Test-only: counts heap allocations of the calling thread (malloc interposed in the test binary).
        .target(name: "MallocCounter", path: "Tests/MallocCounter"),
        .testTarget(
            name: "ConformerTests", dependencies: ["Conformer", "WeightLoader", "Tensor", "MallocCounter", "TestFixtures"],
            path: "Tests/ConformerTests"),
        .testTarget(
            name: "RNNTTests", dependencies: ["RNNT", "Conformer", "WeightLoader", "Tensor", "TestFixtures"],
            path: "Tests/RNNTTests"),
    ],
    swiftLanguageModes: [.v6]
)
