//! `genretag convert-musicnn`: TF checkpoint (from the ISC-licensed musicnn wheel) -> burnpack.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use burn::module::Module;
use burn::tensor::Device;
use clap::Args;

use super::EXIT_OK;
use crate::ml::Musicnn;
use crate::ml::npy::read_npz;
use crate::ml::tf_checkpoint::read_checkpoint;

/// Arguments of `convert-musicnn`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// Checkpoint prefix, e.g. `musicnn/MSD_musicnn/` from the unpacked wheel (files `.index`,
    /// `.data-00000-of-00001` inside it).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Output burnpack.
    #[arg(long, default_value = "models/musicnn_msd.bpk")]
    pub out: PathBuf,
    /// Optional `.npz` of the same tensors to check the reading against (exact equality).
    #[arg(long)]
    pub check_npz: Option<PathBuf>,
}

/// Run `convert-musicnn`.
pub fn run(args: ConvertArgs, device: &Device) -> anyhow::Result<u8> {
    let ckpt =
        read_checkpoint(&args.checkpoint).context("while reading the TensorFlow checkpoint")?;
    eprintln!(
        "read {} tensors from {}",
        ckpt.len(),
        args.checkpoint.display()
    );
    let tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)> = ckpt
        .into_iter()
        .map(|(k, t)| (k, (t.shape, t.values)))
        .collect();
    if let Some(npz) = &args.check_npz {
        let reference = read_npz(npz)?;
        for (name, arr) in &reference {
            let (shape, values) = tensors
                .get(name)
                .with_context(|| format!("checkpoint lacks {name}, which the npz has"))?;
            anyhow::ensure!(
                shape == &arr.shape,
                "{name}: shape {shape:?} vs {:?}",
                arr.shape
            );
            anyhow::ensure!(
                Some(values.as_slice()) == arr.f32s(),
                "{name}: values differ"
            );
        }
        eprintln!(
            "all {} tensors equal those in {}",
            reference.len(),
            npz.display()
        );
    }
    let net = Musicnn::from_tf_tensors(&tensors, device)?;
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    net.save_file(&args.out)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", args.out.display()))?;
    eprintln!("wrote {}", args.out.display());
    Ok(EXIT_OK)
}
