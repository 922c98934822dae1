//! Quantize and dequantize parity with gguf-py (`gguf.quants`, llama.cpp's own Python
//! package), byte for byte, for Q8_0, Q4_0, Q4_1, BF16, F16, TQ1_0 and TQ2_0.
//!
//! Needs the project's Python venv: `SHARD_PYTHON` or `~/.cache/shard/venv/bin/python`
//! with `gguf` and `numpy`. A missing interpreter FAILS the test (run `cargo xtask setup`).
//! Runs on x86_64 hosts only: the aarch64 test binary runs under qemu-user, where the
//! host's Python is foreign, and the quantizers are the same portable code on every arch.

#![cfg(target_arch = "x86_64")]

mod common;

use std::{
    io::Write,
    path::PathBuf,
    process::{Command, Stdio},
};

use common::*;
use kernels_cpu::{QMatrix, WeightFormat};
use rand::RngExt;

const SCRIPT: &str = r#"
import sys
import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.quants import quantize, dequantize
rows, cols = int(sys.argv[1]), int(sys.argv[2])
x = np.frombuffer(sys.stdin.buffer.read(), dtype="<f4").reshape(rows, cols)
out = sys.stdout.buffer
for t in (T.Q8_0, T.Q4_0, T.Q4_1, T.BF16, T.F16, T.TQ1_0, T.TQ2_0):
    q = np.ascontiguousarray(quantize(x, t))
    out.write(q.tobytes())
    out.write(np.ascontiguousarray(dequantize(q, t), dtype="<f4").tobytes())
"#;

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("SHARD_PYTHON") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").expect("HOME is set");
    PathBuf::from(home).join(".cache/shard/venv/bin/python")
}

/// Rows of seeded data plus the awkward cases: zeros, constants, rounding ties, negative
/// maxima, tiny values (subnormal f16 scales) and huge ones (scales that overflow f16).
fn data(rows: usize, cols: usize) -> Vec<f32> {
    let mut rng = rng(42);
    let mut x: Vec<f32> = (0..rows * cols)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    for (r, row) in x.chunks_mut(cols).enumerate() {
        match r {
            0 => row.fill(0.0),
            1 => row.fill(-0.75),
            2 => {
                // Q8_0: amax 63.5, scale 0.5, so j + 0.25 scales to a tie.
                for (i, v) in row.iter_mut().enumerate() {
                    *v = if i % 32 == 0 {
                        63.5
                    } else {
                        (i % 32) as f32 - 16.0 + 0.25
                    };
                }
            }
            3 => {
                // Q4_0: max −8 gives d = 1, so x + 8.5 hits the truncation edges.
                for (i, v) in row.iter_mut().enumerate() {
                    *v = if i % 32 == 0 {
                        -8.0
                    } else {
                        ((i % 32) as f32 - 16.0) * 0.5
                    };
                }
            }
            4 => row.iter_mut().for_each(|v| *v *= 1e-6),
            5 => row.iter_mut().for_each(|v| *v *= 1e7),
            6 => row.iter_mut().for_each(|v| *v = v.abs() + 3.0),
            _ => {
                let scale = 10f32.powf(rng.random_range(-4.0..4.0));
                row.iter_mut().for_each(|v| *v *= scale);
            }
        }
    }
    x
}

#[test]
fn quantize_and_dequantize_match_gguf_py_byte_for_byte() {
    // 768 columns: whole blocks of every format (32 and 256 values).
    let (rows, cols) = (48, 768);
    let x = data(rows, cols);
    let py = python();
    let mut child = Command::new(&py)
        .args(["-c", SCRIPT, &rows.to_string(), &cols.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run the reference Python {} ({e}): run `cargo xtask setup` (or set \
                 SHARD_PYTHON to a Python with `gguf` and `numpy`)",
                py.display()
            )
        });
    let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "gguf-py failed ({}): {}\nrun `cargo xtask setup` if gguf or numpy is missing",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rest = &out.stdout[..];
    for f in [
        WeightFormat::Q8_0,
        WeightFormat::Q4_0,
        WeightFormat::Q4_1,
        WeightFormat::BF16,
        WeightFormat::F16,
        WeightFormat::Tq1_0,
        WeightFormat::Tq2_0,
    ] {
        let n = f.row_bytes(cols) * rows;
        let (want_q, tail) = rest.split_at(n);
        let (want_dq, tail) = tail.split_at(4 * rows * cols);
        rest = tail;
        let got_q = quantize(f, &x);
        if let Some(i) = got_q.iter().zip(want_q).position(|(a, b)| a != b) {
            let blk = i / f.block_bytes();
            panic!(
                "{f:?}: byte {i} (row {}, block {}) differs: ours {:02x?}, gguf-py {:02x?}",
                i / f.row_bytes(cols),
                blk % (cols / f.block_len()),
                &got_q[blk * f.block_bytes()..(blk + 1) * f.block_bytes()],
                &want_q[blk * f.block_bytes()..(blk + 1) * f.block_bytes()]
            );
        }
        let m = QMatrix::new(f, rows, cols, &got_q).unwrap();
        let mut row = vec![0.0; cols];
        for r in 0..rows {
            m.dequantize_row(r, &mut row);
            for (c, (&g, w)) in row
                .iter()
                .zip(want_dq[4 * r * cols..].chunks_exact(4))
                .enumerate()
            {
                let w = f32::from_le_bytes(w.try_into().unwrap());
                assert!(
                    g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                    "{f:?} dequantized [{r}][{c}]: ours {g:e}, gguf-py {w:e}"
                );
            }
        }
    }
    assert!(
        rest.is_empty(),
        "gguf-py wrote {} unexpected bytes",
        rest.len()
    );
}

/// The numpy notes on the ternary layouts (`e2e/reference/ternary_layouts.py`,
/// written from ggml-common.h, ggml-quants.c and bitnet.cpp's ggml-bitnet-mad.cpp): their
/// I2_S quantizer must write our bytes, and their dequantizers must read our TQ1_0, TQ2_0
/// and I2_S bytes as we do.
const TERNARY_SCRIPT: &str = r#"
import sys, importlib.util
import numpy as np
spec = importlib.util.spec_from_file_location("draft", sys.argv[1])
draft = importlib.util.module_from_spec(spec)
spec.loader.exec_module(draft)
rows, cols = int(sys.argv[2]), int(sys.argv[3])
n = rows * cols
data = sys.stdin.buffer.read()
x = np.frombuffer(data[:4 * n], dtype="<f4")
rest = data[4 * n:]
tq1, rest = rest[:n // 256 * 54], rest[n // 256 * 54:]
tq2, i2s = rest[:n // 256 * 66], rest[n // 256 * 66:]
out = sys.stdout.buffer
out.write(draft.quant_i2_s(x))
out.write(draft.dequant_i2_s(i2s, (cols, rows)).astype("<f4").tobytes())
out.write(draft.dequant_tq1_0(tq1, n).astype("<f4").tobytes())
out.write(draft.dequant_tq2_0(tq2, n).astype("<f4").tobytes())
"#;

#[test]
fn ternary_layouts_match_the_numpy_reference_notes() {
    use kernels_cpu::formats::{i2_s, tq1_0, tq2_0};
    let (rows, cols) = (6, 768);
    let n = rows * cols;
    let mut rng = rng(43);
    // Ternary values with a different scale per 256-value block (TQ) and one maximum.
    let x: Vec<f32> = (0..n)
        .map(|i| f32::from(rng.random_range(-1i8..=1)) * (1.0 + (i / 256) as f32 * 0.25))
        .collect();
    let (q1, q2, qi) = (
        tq1_0::quantize_row_bytes(&x),
        tq2_0::quantize_row_bytes(&x),
        i2_s::quantize_tensor(&x, rows, cols),
    );
    let draft = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../e2e/reference/ternary_layouts.py");
    let mut child = Command::new(python())
        .arg("-c")
        .arg(TERNARY_SCRIPT)
        .arg(&draft)
        .args([rows.to_string(), cols.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the reference Python (cargo xtask setup)");
    let mut input: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    input.extend_from_slice(&q1);
    input.extend_from_slice(&q2);
    input.extend_from_slice(&qi);
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "numpy reference failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (want_qi, rest) = out.stdout.split_at(qi.len());
    assert_eq!(qi, want_qi, "I2_S bytes differ from the numpy quantizer");
    let floats = |b: &[u8]| -> Vec<f32> {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    let got = floats(rest);
    assert_eq!(got.len(), 3 * n);
    let mut ours = vec![0.0; n];
    let i2 = i2_s::dequantize_tensor(&qi, rows, cols).unwrap();
    assert_eq!(i2, got[..n], "I2_S dequantized");
    tq1_0::dequantize_row(&q1, &mut ours);
    assert_eq!(ours, got[n..2 * n], "TQ1_0 dequantized");
    tq2_0::dequantize_row(&q2, &mut ours);
    assert_eq!(ours, got[2 * n..], "TQ2_0 dequantized");
    assert_eq!(ours, x, "ternary values survive TQ2_0 exactly");
}
