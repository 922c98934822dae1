use super::*;

fn sample_writer() -> GgufWriter {
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", MetaValue::String("llama".into()))
        .metadata("u8", MetaValue::U8(200))
        .metadata("i8", MetaValue::I8(-5))
        .metadata("u16", MetaValue::U16(65000))
        .metadata("i16", MetaValue::I16(-30000))
        .metadata("u32", MetaValue::U32(4_000_000_000))
        .metadata("i32", MetaValue::I32(-2_000_000_000))
        .metadata("u64", MetaValue::U64(u64::MAX))
        .metadata("i64", MetaValue::I64(i64::MIN))
        .metadata("f32", MetaValue::F32(1.5))
        .metadata("f64", MetaValue::F64(-2.25))
        .metadata("bool", MetaValue::Bool(true))
        .metadata("strs", MetaValue::strings(["a", "", "ünï"]))
        .metadata("f32s", MetaValue::f32s([1.0, 2.0, -3.5]))
        .metadata(
            "nested",
            MetaValue::Array {
                elem: ValueType::Array,
                items: vec![MetaValue::i32s([1, 2]), MetaValue::i32s([])],
            },
        );
    w.tensor("a", &[4, 2], GgmlType::F32, (0..32).collect())
        .unwrap()
        .tensor("b", &[32], GgmlType::Q8_0, vec![7; 34])
        .unwrap();
    w
}

#[test]
fn round_trips_every_value_type_and_tensor() {
    let bytes = sample_writer().to_bytes().unwrap();
    let f = GgufFile::parse(&bytes).unwrap();
    assert_eq!(f.version, 3);
    assert_eq!(f.architecture().unwrap(), "llama");
    assert_eq!(f.get("u8"), Some(&Value::U8(200)));
    assert_eq!(f.get("i8"), Some(&Value::I8(-5)));
    assert_eq!(f.get("u16"), Some(&Value::U16(65000)));
    assert_eq!(f.get("i16"), Some(&Value::I16(-30000)));
    assert_eq!(f.get_u64("u32").unwrap(), Some(4_000_000_000));
    assert_eq!(f.get_i64("i32").unwrap(), Some(-2_000_000_000));
    assert_eq!(f.get_u64("u64").unwrap(), Some(u64::MAX));
    assert_eq!(f.get_i64("i64").unwrap(), Some(i64::MIN));
    assert_eq!(f.get_f64("f32").unwrap(), Some(1.5));
    assert_eq!(f.get_f64("f64").unwrap(), Some(-2.25));
    assert_eq!(f.get_bool("bool").unwrap(), Some(true));
    assert_eq!(
        f.require_array("strs").unwrap().to_strs("strs").unwrap(),
        vec!["a", "", "ünï"]
    );
    assert_eq!(
        f.require_array("f32s").unwrap().to_f32s("f32s").unwrap(),
        vec![1.0, 2.0, -3.5]
    );
    let nested = f.require_array("nested").unwrap();
    assert_eq!(nested.len(), 2);
    let Some(Value::Array(first)) = nested.get(0) else {
        panic!("nested[0] should be an array")
    };
    assert_eq!(first.to_i64s("nested[0]").unwrap(), vec![1, 2]);

    let a = f.require_tensor("a").unwrap();
    assert_eq!(
        (a.ty, a.dims.as_slice(), a.size),
        (GgmlType::F32, &[4, 2][..], 32)
    );
    assert_eq!(f.tensor_data(a), (0..32).collect::<Vec<u8>>().as_slice());
    let b = f.require_tensor("b").unwrap();
    assert_eq!(b.offset % f.alignment, 0);
    assert_eq!(f.tensor_data(b), &[7u8; 34][..]);
    assert_eq!(f.data_offset % DEFAULT_ALIGNMENT, 0);
}

#[test]
fn typed_getters_name_the_key_on_type_mismatch() {
    let bytes = sample_writer().to_bytes().unwrap();
    let f = GgufFile::parse(&bytes).unwrap();
    let err = f.get_str("u32").unwrap_err();
    assert_eq!(
        err.to_string(),
        "metadata key \"u32\" should be UTF-8 string, found u32"
    );
    assert_eq!(
        f.require_u64("absent").unwrap_err(),
        GgufError::MissingKey("absent".into())
    );
    assert_eq!(
        f.require_tensor("nope").unwrap_err(),
        GgufError::MissingTensor("nope".into())
    );
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let bytes = sample_writer().to_bytes().unwrap();
    // The last tensor's data ends before the final padding; anything shorter
    // than that must fail.
    let f = GgufFile::parse(&bytes).unwrap();
    let last = f
        .tensors
        .iter()
        .map(|t| f.data_offset + t.offset + t.size)
        .max()
        .unwrap();
    for len in 0..last as usize {
        assert!(
            GgufFile::parse(&bytes[..len]).is_err(),
            "prefix of {len} bytes parsed"
        );
    }
    assert!(GgufFile::parse(&bytes[..last as usize]).is_ok());
}

#[test]
fn rejects_bad_magic_and_versions() {
    let mut bytes = sample_writer().to_bytes().unwrap();
    assert!(matches!(
        GgufFile::parse(b"GGML\x03\0\0\0"),
        Err(GgufError::BadMagic { .. })
    ));
    assert!(matches!(
        GgufFile::parse(b"GG"),
        Err(GgufError::BadMagic { .. })
    ));
    for v in [0u32, 1, 4, u32::MAX] {
        bytes[4..8].copy_from_slice(&v.to_le_bytes());
        assert_eq!(
            GgufFile::parse(&bytes).unwrap_err(),
            GgufError::UnsupportedVersion(v)
        );
    }
}

/// Builds a header by hand: magic, version, counts, then `rest`.
fn raw(n_tensors: u64, n_kv: u64, rest: &[u8]) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&n_tensors.to_le_bytes());
    b.extend_from_slice(&n_kv.to_le_bytes());
    b.extend_from_slice(rest);
    b
}

fn kv(key: &str, ty: u32, value: &[u8]) -> Vec<u8> {
    let mut b = (key.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(key.as_bytes());
    b.extend_from_slice(&ty.to_le_bytes());
    b.extend_from_slice(value);
    b
}

#[test]
fn absurd_counts_fail_before_allocating() {
    // A million tensors in a 24-byte file: refused by the bytes-left check.
    let err = GgufFile::parse(&raw(1 << 19, 0, &[])).unwrap_err();
    assert!(
        matches!(
            err,
            GgufError::Truncated {
                what: "tensor count",
                ..
            }
        ),
        "{err}"
    );
    let err = GgufFile::parse(&raw(u64::MAX, 0, &[])).unwrap_err();
    assert!(
        matches!(
            err,
            GgufError::TooLarge {
                what: "tensor count",
                ..
            }
        ),
        "{err}"
    );
    let err = GgufFile::parse(&raw(0, u64::MAX, &[])).unwrap_err();
    assert!(
        matches!(
            err,
            GgufError::TooLarge {
                what: "metadata count",
                ..
            }
        ),
        "{err}"
    );

    // An array claiming 2^40 u32 elements.
    let mut arr = 4u32.to_le_bytes().to_vec();
    arr.extend_from_slice(&(1u64 << 40).to_le_bytes());
    let err = GgufFile::parse(&raw(0, 1, &kv("k", 9, &arr))).unwrap_err();
    assert!(
        matches!(
            err,
            GgufError::TooLarge {
                what: "array length",
                ..
            }
        ),
        "{err}"
    );
    // ... and one within the limit but beyond the bytes present.
    let mut arr = 4u32.to_le_bytes().to_vec();
    arr.extend_from_slice(&(1u64 << 20).to_le_bytes());
    let err = GgufFile::parse(&raw(0, 1, &kv("k", 9, &arr))).unwrap_err();
    assert!(
        matches!(
            err,
            GgufError::Truncated {
                what: "array length",
                ..
            }
        ),
        "{err}"
    );

    // A string claiming u64::MAX bytes.
    let err = GgufFile::parse(&raw(0, 1, &kv("k", 8, &u64::MAX.to_le_bytes()))).unwrap_err();
    assert!(
        matches!(
            err,
            GgufError::TooLarge {
                what: "metadata string",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn deep_nesting_is_bounded() {
    let depth = 100;
    let mut value = Vec::new();
    for _ in 0..depth {
        value.extend_from_slice(&9u32.to_le_bytes());
        value.extend_from_slice(&1u64.to_le_bytes());
    }
    value.extend_from_slice(&4u32.to_le_bytes());
    value.extend_from_slice(&0u64.to_le_bytes());
    let err = GgufFile::parse(&raw(0, 1, &kv("k", 9, &value))).unwrap_err();
    assert!(
        matches!(
            err,
            GgufError::TooLarge {
                what: "array nesting depth",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn rejects_invalid_value_types_bools_and_utf8() {
    let err = GgufFile::parse(&raw(0, 1, &kv("k", 13, &[]))).unwrap_err();
    assert_eq!(
        err,
        GgufError::InvalidValueType {
            key: "k".into(),
            id: 13
        }
    );
    let err = GgufFile::parse(&raw(0, 1, &kv("k", 7, &[2]))).unwrap_err();
    assert_eq!(
        err,
        GgufError::InvalidBool {
            key: "k".into(),
            byte: 2
        }
    );
    let mut bad_key = 2u64.to_le_bytes().to_vec();
    bad_key.extend_from_slice(&[0xff, 0xfe]);
    bad_key.extend_from_slice(&4u32.to_le_bytes());
    bad_key.extend_from_slice(&0u32.to_le_bytes());
    assert!(matches!(
        GgufFile::parse(&raw(0, 1, &bad_key)),
        Err(GgufError::InvalidUtf8 { .. })
    ));
    let dup = [kv("k", 4, &[0; 4]), kv("k", 4, &[0; 4])].concat();
    assert!(matches!(
        GgufFile::parse(&raw(0, 2, &dup)),
        Err(GgufError::Duplicate {
            what: "metadata key",
            ..
        })
    ));
}

fn tensor_info(name: &str, dims: &[u64], ty: u32, offset: u64) -> Vec<u8> {
    let mut b = (name.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(name.as_bytes());
    b.extend_from_slice(&(dims.len() as u32).to_le_bytes());
    for d in dims {
        b.extend_from_slice(&d.to_le_bytes());
    }
    b.extend_from_slice(&ty.to_le_bytes());
    b.extend_from_slice(&offset.to_le_bytes());
    b
}

/// One tensor info followed by padding and `data_len` bytes of data.
fn one_tensor(dims: &[u64], ty: u32, offset: u64, data_len: usize) -> Vec<u8> {
    let mut b = raw(1, 0, &tensor_info("t", dims, ty, offset));
    b.resize(b.len().div_ceil(32) * 32 + data_len, 0);
    b
}

#[test]
fn tensor_infos_are_validated() {
    assert!(GgufFile::parse(&one_tensor(&[32, 2], 8, 0, 68)).is_ok());
    assert_eq!(
        GgufFile::parse(&one_tensor(&[32, 2], 99, 0, 68))
            .unwrap_err()
            .to_string(),
        "tensor \"t\" has unknown tensor type id 99"
    );
    assert!(matches!(
        GgufFile::parse(&one_tensor(&[33, 2], 8, 0, 68)),
        Err(GgufError::ShapeNotBlockAligned { .. })
    ));
    assert!(matches!(
        GgufFile::parse(&one_tensor(&[32, 0], 8, 0, 68)),
        Err(GgufError::BadShape { .. })
    ));
    assert!(matches!(
        GgufFile::parse(&one_tensor(&[u64::MAX, u64::MAX], 0, 0, 68)),
        Err(GgufError::BadShape { .. })
    ));
    assert!(matches!(
        GgufFile::parse(&one_tensor(&[1, 1, 1, 1, 1], 0, 0, 4)),
        Err(GgufError::TooManyDims { n_dims: 5, .. })
    ));
    assert!(matches!(
        GgufFile::parse(&one_tensor(&[32, 2], 8, 4, 68)),
        Err(GgufError::MisalignedTensor { offset: 4, .. })
    ));
    assert!(matches!(
        GgufFile::parse(&one_tensor(&[32, 2], 8, 0, 67)),
        Err(GgufError::TensorOutOfBounds { .. })
    ));
    assert!(matches!(
        GgufFile::parse(&one_tensor(&[32, 2], 8, u64::MAX - 31, 68)),
        Err(GgufError::TensorOutOfBounds { .. })
    ));
    let two = [tensor_info("t", &[1], 0, 0), tensor_info("t", &[1], 0, 32)].concat();
    let mut b = raw(2, 0, &two);
    b.resize(b.len().div_ceil(32) * 32 + 64, 0);
    assert!(matches!(
        GgufFile::parse(&b),
        Err(GgufError::Duplicate { what: "tensor", .. })
    ));
}

#[test]
fn alignment_must_be_a_power_of_two() {
    for bad in [0u32, 3, 48] {
        let b = raw(0, 1, &kv("general.alignment", 4, &bad.to_le_bytes()));
        assert_eq!(
            GgufFile::parse(&b).unwrap_err(),
            GgufError::BadAlignment(bad.into())
        );
    }
    let mut w = sample_writer();
    w.metadata("general.alignment", MetaValue::U32(64));
    let bytes = w.to_bytes().unwrap();
    let f = GgufFile::parse(&bytes).unwrap();
    assert_eq!(f.alignment, 64);
    assert_eq!(f.data_offset % 64, 0);
    assert!(f.tensors.iter().all(|t| t.offset % 64 == 0));
}

#[test]
fn writer_refuses_data_that_does_not_fit_the_shape() {
    let mut w = GgufWriter::new();
    assert!(w.tensor("x", &[32], GgmlType::Q4_0, vec![0; 17]).is_err());
    assert!(w.tensor("x", &[31], GgmlType::Q4_0, vec![0; 18]).is_err());
    assert!(w.tensor("x", &[32], GgmlType::Q4_0, vec![0; 18]).is_ok());
}

#[test]
fn type_table_matches_ggml() {
    for id in 0..64 {
        if let Some(t) = GgmlType::from_id(id) {
            assert_eq!(t.id(), id);
        }
    }
    assert_eq!(GgmlType::Q4_1.block_layout(), Some((32, 20)));
    assert_eq!(GgmlType::TQ2_0.block_layout(), Some((256, 66)));
    assert_eq!(GgmlType::I2_S.tensor_bytes(128, 256), Some(256 / 4 + 32));
}
