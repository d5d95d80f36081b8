// swift-tools-version:6.1
import PackageDescription

/// One set of settings for every target: Swift 6 language mode with strict concurrency.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "flotilla",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "flotilla", targets: ["flotilla"]),
        .library(name: "RdKafka", targets: ["RdKafka"]),
        .library(name: "FlotillaCore", targets: ["FlotillaCore"]),
        .library(name: "FlotillaSpec", targets: ["FlotillaSpec"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        // The operator surface: HTTP server, Prometheus exposition; async-http-client and
        // swift-nio-ssl for the Kubernetes API (and the tests' clients).
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1", traits: ["FullFoundation"]),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
    ],
    targets: [
        // C at the edge: librdkafka through pkg-config, imported only by RdKafka.
        .systemLibrary(name: "CRdKafka", pkgConfig: "rdkafka"),
        .target(
            name: "RdKafka",
            dependencies: [
                "CRdKafka",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "EmbeddedBroker",
            dependencies: ["FlotillaCore", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "FlotillaCore",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "FlotillaSpec",
            dependencies: ["FlotillaCore", .product(name: "Yams", package: "Yams")],
            swiftSettings: swiftSettings
        ),
        // The only importer of RdKafka: Flotilla's records on a job's topics, in Flotilla's terms.
        .target(
            name: "FlotillaKafka",
            dependencies: ["RdKafka", "FlotillaCore", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "FlotillaSources",
            dependencies: [
                "FlotillaCore",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "FlotillaPredictor",
            dependencies: [
                "FlotillaCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "FlotillaWorker",
            dependencies: [
                "FlotillaKafka", "FlotillaCore", "FlotillaSources", "FlotillaPredictor",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "FlotillaJobs",
            dependencies: [
                "FlotillaKafka", "FlotillaCore", "FlotillaSources",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "FlotillaHTTP",
            dependencies: [
                "FlotillaCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "FlotillaController",
            dependencies: [
                "FlotillaKafka", "FlotillaCore", "FlotillaHTTP",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "flotilla",
            dependencies: [
                "EmbeddedBroker",
                "FlotillaKafka",
                "FlotillaCore",
                "FlotillaSpec",
                "FlotillaPredictor",
                "FlotillaJobs",
                "FlotillaController",
                "FlotillaWorker",
                "FlotillaHTTP",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Benchmarks that need Swift code: built with the package, never shipped (not a product).
        .executableTarget(
            name: "controller-capacity",
            dependencies: ["FlotillaController", "FlotillaCore"],
            path: "Benchmarks/ControllerCapacity",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "scan-speed",
            dependencies: ["FlotillaCore"],
            path: "Benchmarks/ScanSpeed",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "FlotillaTestSupport",
            dependencies: ["RdKafka", "EmbeddedBroker", "FlotillaCore", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "RdKafkaTests", dependencies: ["RdKafka", "FlotillaTestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "FlotillaKafkaTests", dependencies: ["FlotillaKafka", "FlotillaCore", "FlotillaTestSupport", "RdKafka", .product(name: "Logging", package: "swift-log")], swiftSettings: swiftSettings),
        .testTarget(name: "FlotillaCLITests", dependencies: ["FlotillaTestSupport", "EmbeddedBroker", "FlotillaCore", "RdKafka"], swiftSettings: swiftSettings),
        .testTarget(name: "FlotillaJobsTests", dependencies: ["FlotillaJobs", "FlotillaKafka", "FlotillaTestSupport", "FlotillaCore", "FlotillaSpec", "RdKafka", "EmbeddedBroker", .product(name: "Logging", package: "swift-log")], swiftSettings: swiftSettings),
        .testTarget(name: "FlotillaWorkerTests", dependencies: ["FlotillaWorker", "FlotillaTestSupport", "FlotillaCore", "FlotillaSpec", "RdKafka"], swiftSettings: swiftSettings),
        .testTarget(
            name: "FlotillaControllerTests",
            dependencies: [
                "FlotillaController", "FlotillaHTTP", "FlotillaTestSupport", "FlotillaCore", "RdKafka", "EmbeddedBroker",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            exclude: ["Fixtures"],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "FlotillaCoreTests", dependencies: ["FlotillaCore", "FlotillaTestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "FlotillaSpecTests", dependencies: ["FlotillaSpec", "FlotillaCore"], swiftSettings: swiftSettings),
        .testTarget(name: "FlotillaSourcesTests", dependencies: ["FlotillaSources", "FlotillaCore", .product(name: "Logging", package: "swift-log")], swiftSettings: swiftSettings),
        .testTarget(
            name: "FlotillaPredictorTests",
            dependencies: [
                "FlotillaPredictor",
                "FlotillaCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
