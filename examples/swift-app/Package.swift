// swift-tools-version:6.0
// An app that uses stt's library, next to a package whose targets are named `Audio` and `Tensor` (names other packages
// use). It expects this repository checked out beside it as `stt`: `scripts/check-app` lays that out, builds the app
// and runs it from the repository root.
import PackageDescription

let package = Package(
    name: "App",
    dependencies: [
        .package(path: "../stt"),         // or .package(url: "<this repository's URL>", from: "<version>")
        .package(path: "Collider"),
    ],
    targets: [
        .executableTarget(
            name: "App",
            dependencies: [
                .product(name: "STTKit", package: "stt"),
                .product(name: "Collider", package: "Collider"),
            ]),
    ],
    swiftLanguageModes: [.v6]
)
