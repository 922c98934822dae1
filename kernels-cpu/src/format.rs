//! [`WeightFormat`] (defined in shared-protocol, which both engines read) and the
//! reference encoder of each format's rows.

pub use shared_protocol::format::WeightFormat;

/// Encodes one row of f32 values into a format's bytes (`x`, `out`).
pub type RowEncoder = fn(&[f32], &mut [u8]);

/// The reference encoder of one row of `format` (`x.len()` a multiple of
/// [`WeightFormat::block_len`], `out` [`WeightFormat::row_bytes`] long), or `None` for
/// I2_S, whose scale belongs to the whole tensor
/// ([`crate::formats::i2_s::quantize_tensor`]).
pub fn row_encoder(format: WeightFormat) -> Option<RowEncoder> {
    use crate::formats::{float, q4_0, q4_1, q8_0, tq1_0, tq2_0};
    Some(match format {
        WeightFormat::F32 => float::quantize_row_f32,
        WeightFormat::F16 => float::quantize_row_f16,
        WeightFormat::BF16 => float::quantize_row_bf16,
        WeightFormat::Q8_0 => q8_0::quantize_row_bytes,
        WeightFormat::Q4_0 => q4_0::quantize_row_bytes,
        WeightFormat::Q4_1 => q4_1::quantize_row_bytes,
        WeightFormat::Tq1_0 => |x, out| out.copy_from_slice(&tq1_0::quantize_row_bytes(x)),
        WeightFormat::Tq2_0 => |x, out| out.copy_from_slice(&tq2_0::quantize_row_bytes(x)),
        WeightFormat::I2S => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::{i2_s, q4_0, q4_1, q8_0, tq1_0, tq2_0};

    /// The shared definition's sizes are the block structs' sizes.
    #[test]
    fn block_sizes_match_the_block_structs() {
        let blocks = [
            (WeightFormat::Q8_0, q8_0::BLOCK_LEN, q8_0::BLOCK_BYTES),
            (WeightFormat::Q4_0, q4_0::BLOCK_LEN, q4_0::BLOCK_BYTES),
            (WeightFormat::Q4_1, q4_1::BLOCK_LEN, q4_1::BLOCK_BYTES),
            (WeightFormat::Tq1_0, tq1_0::BLOCK_LEN, tq1_0::BLOCK_BYTES),
            (WeightFormat::Tq2_0, tq2_0::BLOCK_LEN, tq2_0::BLOCK_BYTES),
            (WeightFormat::I2S, i2_s::BLOCK_LEN, i2_s::BLOCK_BYTES),
        ];
        for (format, len, bytes) in blocks {
            assert_eq!(
                (format.block_len(), format.block_bytes()),
                (len, bytes),
                "{format}"
            );
        }
        assert_eq!(WeightFormat::I2S_TAIL_BYTES, i2_s::TAIL_BYTES);
    }
}
