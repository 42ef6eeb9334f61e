// swift-tools-version:6.0
// Stands for any other dependency of an app that has targets named like common modules.
import PackageDescription

let package = Package(
    name: "Collider",
    products: [.library(name: "Collider", targets: ["Audio", "Tensor"])],
    targets: [.target(name: "Audio"), .target(name: "Tensor")]
)
