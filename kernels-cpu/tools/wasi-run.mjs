// Runs a wasm32-wasip1 test binary under Node's WASI (Node >= 20), for
// `cargo test --target wasm32-wasip1` (see kernels-cpu/README notes in lib.rs):
//
//   CARGO_TARGET_WASM32_WASIP1_RUNNER="node kernels-cpu/tools/wasi-run.mjs" \
//   RUSTFLAGS="-C target-feature=+simd128" \
//   cargo test -p kernels-cpu --target wasm32-wasip1
//
// The whole file system is preopened as "/" and the environment passed through.
import { readFile } from "node:fs/promises";
import { argv, env, exit } from "node:process";
import { WASI } from "node:wasi";

const [file, ...args] = argv.slice(2);
const wasi = new WASI({
  version: "preview1",
  args: [file, ...args],
  env,
  preopens: { "/": "/" },
  returnOnExit: true,
});
const module = await WebAssembly.compile(await readFile(file));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
exit(wasi.start(instance));
