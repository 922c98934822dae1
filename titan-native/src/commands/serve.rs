//! `titan serve`: the model behind the OpenAI-compatible HTTP API.

use std::io::Write;

use anyhow::{Context, Result};

use crate::cli::ServeArgs;
use crate::mesh::node::MeshOptions;
use crate::server::{ScoutModel, ServeOptions, serve};

pub fn run(args: ServeArgs) -> Result<()> {
    // Checked before the model loads, so a wrong path fails at once.
    if let Some(dir) = &args.app
        && !dir.join("index.html").is_file()
    {
        anyhow::bail!(
            "--app {}: no index.html there (build the app with `cargo xtask app`)",
            dir.display()
        );
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating the data dir {}", args.data_dir.display()))?;
    let model = super::load_model(&args.model)?;
    let draft = super::load_draft(args.draft.as_deref(), &args.model, &model)?;
    let model_id = args
        .model_id
        .clone()
        .unwrap_or_else(|| default_model_id(&args.model.model));
    let scout_model = if args.no_scout_model {
        None
    } else {
        let path = match &args.scout_model {
            Some(name) => crate::model_name::resolve(name)?,
            None => draft.as_ref().map_or(&model.path, |d| &d.path).clone(),
        };
        Some(ScoutModel::open(&path)?)
    };
    let options = ServeOptions {
        app_dir: args.app.clone(),
        scout_model,
        http: args.http,
        model_id: model_id.clone(),
        max_sessions: args.max_sessions,
        max_tokens_cap: args.max_tokens,
        mesh: (!args.no_mesh).then(|| MeshOptions {
            data_dir: args.data_dir.clone(),
            listen: if args.listen.is_empty() {
                crate::mesh::default_listen()
            } else {
                args.listen.clone()
            },
            bootstrap: args.bootstrap.clone(),
            deadline: std::time::Duration::from_millis(args.draft_deadline_ms.max(1)),
            model_id: model_id.clone(),
            n_layers: model.config.n_layer,
            limits: crate::mesh::behaviour::Limits::default(),
        }),
    };
    serve(model, draft, options, |addr| {
        // One line on stdout that scripts and tests can wait for.
        println!("listening on http://{addr} (model {model_id})");
        let _ = std::io::stdout().flush();
        tracing::info!(%addr, model = %model_id, "serving");
    })
}

/// The short name when the model was given by one, else the file stem.
pub(crate) fn default_model_id(arg: &str) -> String {
    if crate::model_name::KNOWN_MODELS
        .iter()
        .any(|(n, _, _)| n.eq_ignore_ascii_case(arg))
    {
        return arg.to_ascii_lowercase();
    }
    std::path::Path::new(arg)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| arg.to_owned())
}
