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
