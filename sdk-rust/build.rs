//! Generates the gRPC client stubs from `../proto`.

use std::{env, error::Error, path::PathBuf};

const PROTOS: &[&str] = &[
    "../proto/dbforge/v1/types.proto",
    "../proto/dbforge/v1/database.proto",
    "../proto/dbforge/v1/query.proto",
    "../proto/dbforge/v1/table.proto",
    "../proto/dbforge/v1/access.proto",
    "../proto/dbforge/v1/operations.proto",
    "../proto/dbforge/v1/transfer.proto",
    "../proto/dbforge/v1/schema.proto",
    "../proto/dbforge/v1/backup.proto",
    "../proto/dbforge/v1/semantic.proto",
];

fn main() -> Result<(), Box<dyn Error>> {
    // protoc comes from a crate so that no system protobuf-compiler is needed.
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing else reads the environment concurrently.
    #[allow(unsafe_code)]
    unsafe {
        env::set_var("PROTOC", protoc);
    }
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .build_server(false)
        // With the proto's comments: `dbforge mcp` describes its tools with them.
        .file_descriptor_set_path(out_dir.join("dbforge_descriptor.bin"))
        .compile_protos(PROTOS, &["../proto"])?;
    println!("cargo:rerun-if-changed=../proto");
    Ok(())
}
