//! `titan inspect MODEL`: what a GGUF file holds, without running it.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde_json::json;
use shared_protocol::chat::ChatTemplate;
use shared_protocol::gguf::{GgufFile, Value};
use shared_protocol::tokenizer::Tokenizer;

use crate::cli::InspectArgs;
use crate::engine::{ModelConfig, map_file};

pub fn run(args: InspectArgs) -> Result<()> {
    let path = crate::model_name::resolve(&args.model)?;
    let bytes = map_file(&path)?;
    let file = GgufFile::parse(&bytes).with_context(|| format!("parsing {}", path.display()))?;

    let arch = file.architecture().unwrap_or("(none)");
    let mut types: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    for t in &file.tensors {
        let e = types.entry(t.ty.name()).or_default();
        e.0 += 1;
        e.1 += t.size;
    }
    let params: u64 = file.tensors.iter().map(|t| t.n_elements()).sum();
    let config = ModelConfig::from_gguf(&file);
    let tokenizer = Tokenizer::from_gguf(&file);
    let template = ChatTemplate::from_gguf(&file);
    let str_key = |k: &str| file.get_str(k).ok().flatten();

    let shapes = match &config {
        Ok(c) => json!({
            "layers": c.n_layer, "embedding": c.n_embd, "ffn": c.n_ff,
            "heads": c.n_head, "kv_heads": c.n_head_kv, "head_dim": c.head_dim,
            "rope_dims": c.n_rot, "rope_base": c.rope_base, "rope_scale": c.rope_scale,
            "context": c.n_ctx, "vocab": c.n_vocab, "rms_eps": c.rms_eps,
        }),
        Err(e) => json!({ "error": e.to_string() }),
    };
    let tokenizer_json = match &tokenizer {
        Ok(t) => {
            let s = t.summary();
            json!({
                "model": s.model, "pre": s.pre, "vocab": s.vocab_size, "merges": s.merges,
                "bos": s.bos, "eos": s.eos, "end_of_generation": s.eog, "add_bos": t.add_bos(),
            })
        }
        Err(e) => json!({ "error": e.to_string() }),
    };
    let template_json = match &template {
        Ok(t) => json!(format!("{t:?}")),
        Err(e) => json!({ "error": e.to_string() }),
    };
    let info = json!({
        "path": path.display().to_string(),
        "file_bytes": bytes.len(),
        "gguf_version": file.version,
        "alignment": file.alignment,
        "architecture": arch,
        "name": str_key("general.name"),
        "metadata_keys": file.metadata.len(),
        "tensors": file.tensors.len(),
        "parameters": params,
        "tensor_types": types.iter().map(|(k, (n, b))| (k.to_string(), json!({"count": n, "bytes": b}))).collect::<serde_json::Map<_, _>>(),
        "shapes": shapes,
        "tokenizer": tokenizer_json,
        "chat_template": template_json,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
        return Ok(());
    }

    println!(
        "file          {} ({:.1} MB)",
        path.display(),
        bytes.len() as f64 / 1e6
    );
    println!(
        "gguf          v{}, alignment {}, {} metadata keys",
        file.version,
        file.alignment,
        file.metadata.len()
    );
    println!("architecture  {arch}");
    if let Some(name) = str_key("general.name") {
        println!("name          {name}");
    }
    println!(
        "parameters    {:.1} M in {} tensors",
        params as f64 / 1e6,
        file.tensors.len()
    );
    for (ty, (n, b)) in &types {
        println!("  {ty:<8} {n:>5} tensors {:>10.1} MB", *b as f64 / 1e6);
    }
    match &config {
        Ok(c) => {
            println!(
                "shapes        {} layers, embedding {}, ffn {}, {} heads / {} kv heads of {}, vocab {}",
                c.n_layer, c.n_embd, c.n_ff, c.n_head, c.n_head_kv, c.head_dim, c.n_vocab
            );
            println!(
                "              context {}, rope base {} over {} dims (scale {}), rms eps {:e}",
                c.n_ctx, c.rope_base, c.n_rot, c.rope_scale, c.rms_eps
            );
        }
        Err(e) => println!("shapes        not runnable here: {e}"),
    }
    match &tokenizer {
        Ok(t) => {
            let s = t.summary();
            println!(
                "tokenizer     {} (pre {}), {} tokens, {} merges, bos {:?}, eos {:?}, add_bos {}",
                s.model,
                s.pre,
                s.vocab_size,
                s.merges,
                s.bos,
                s.eos,
                t.add_bos()
            );
        }
        Err(e) => println!("tokenizer     unusable: {e}"),
    }
    match &template {
        Ok(t) => println!("chat template {t:?}"),
        Err(e) => println!("chat template {e}"),
    }
    let other: Vec<String> = file
        .metadata
        .iter()
        .filter(|(k, _)| !k.starts_with("tokenizer.ggml.") && *k != "tokenizer.chat_template")
        .map(|(k, v)| format!("  {k} = {}", short_value(v)))
        .collect();
    println!("metadata");
    for line in other {
        println!("{line}");
    }
    Ok(())
}

fn short_value(v: &Value<'_>) -> String {
    match v {
        Value::String(s) => {
            let s = String::from_utf8_lossy(s);
            if s.chars().count() > 60 {
                format!("{:?}…", s.chars().take(60).collect::<String>())
            } else {
                format!("{s:?}")
            }
        }
        Value::Array(a) => format!("[{} × {}]", a.len(), a.element_type().name()),
        other => match other.as_f64() {
            Some(x) => format!("{x}"),
            None => format!("{other:?}"),
        },
    }
}
