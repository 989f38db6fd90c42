// swift-tools-version:5.10
import PackageDescription

let package = Package(
    name: "sse-server",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(url: "https://github.com/vapor/vapor.git", exact: "4.119.2"),
    ],
    targets: [
        .executableTarget(
            name: "Server",
            dependencies: [.product(name: "Vapor", package: "vapor")],
            path: "Sources/Server"
        ),
    ]
)
