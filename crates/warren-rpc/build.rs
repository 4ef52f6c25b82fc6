//! Generates the Rust types of proto/warren/*.proto with a vendored protoc,
//! so building needs no system protobuf compiler.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let protos = [
        root.join("warren/log.proto"),
        root.join("warren/raft.proto"),
        root.join("warren/broker.proto"),
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    // The protoc path goes through the config rather than the PROTOC
    // variable: setting an env var is `unsafe` in edition 2024.
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // Message bodies and properties are `Bytes`: decoding from a `Bytes`
    // buffer slices it instead of copying.
    config.bytes(["."]);
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_with_config(config, &protos, &[root])?;
    Ok(())
}
