//! The command-line names of the option enums that the domain modules define.
//!
//! clap lives only in `cli`: these `ValueEnum` impls give each variant the name the
//! derive gave it before (kebab-case) and a one-line help. The variant list and the
//! `match` come from one list, so a variant added to an enum without a name here fails
//! to compile.

use clap::ValueEnum;
use clap::builder::PossibleValue;

/// `impl ValueEnum for TYPE { Variant => "name": "help", ... }`.
macro_rules! choices {
    ($ty:ty { $($var:ident => $name:literal : $help:literal),+ $(,)? }) => {
        impl ValueEnum for $ty {
            fn value_variants<'a>() -> &'a [Self] {
                &[$(Self::$var),+]
            }

            fn to_possible_value(&self) -> Option<PossibleValue> {
                Some(match self {
                    $(Self::$var => PossibleValue::new($name).help($help)),+
                })
            }
        }
    };
}

choices!(crate::library::policy::Mode {
    Replace => "replace": "Write the proposed genres (keeping protected existing ones)",
    Merge => "merge": "Add the proposed genres to the existing ones",
    Fill => "fill": "Only tag files that have no genre yet",
});

choices!(crate::train::features::Repr {
    Logmel => "logmel": "96-band log-mel patches",
    Mfcc => "mfcc": "20 MFCCs per frame",
    Raw => "raw": "8 kHz waveform",
    Hand => "hand": "Handcrafted feature vector per window",
    Embed => "embed": "musicnn embedding per window",
    Tags => "tags": "musicnn's 50 tag probabilities per window",
});

choices!(crate::train::search::Mode {
    Grid => "grid": "Every combination of the listed values",
    Random => "random": "Draws within each parameter's range (log-uniform for positive rates)",
});

choices!(crate::train::models::ModelKind {
    Transfer => "transfer": "Logistic regression / MLP on the musicnn embedding",
    CnnNaive => "cnn-naive": "Two-layer CNN baseline",
    Cnn5 => "cnn5": "Five-block CNN",
    Rescnn => "rescnn": "Residual 2-D CNN (NNET2)",
    Crnn => "crnn": "Convolutional front end + 2 bidirectional recurrent layers",
    Cnn1d => "cnn1d": "1-D CNN on the waveform (NNET1)",
    Mixnet => "mixnet": "NNET1 + NNET2 in parallel",
    Rnn => "rnn": "Recurrent net on handcrafted feature sequences",
    Hybrid => "hybrid": "CNN embedding + handcrafted features",
    Logreg => "logreg": "Logistic regression on handcrafted features",
    Sgd => "sgd": "Linear SGD classifier (hinge loss) on handcrafted features",
    Forest => "forest": "Random forest on handcrafted features",
});

choices!(crate::train::models::Cell {
    Gru => "gru": "Gated recurrent unit",
    Lstm => "lstm": "Long short-term memory",
});

choices!(crate::train::run::GroupBy {
    Gtzan => "gtzan": "GTZAN's blocks of 5 consecutive clip numbers",
    Artist => "artist": "The artist tag",
    Album => "album": "The album tag",
});

choices!(crate::train::trainer::Optim {
    Adam => "adam": "Adam with L2 weight decay",
    Adamw => "adamw": "AdamW (decoupled weight decay)",
    Sgd => "sgd": "Plain SGD with momentum 0.9",
});

choices!(crate::train::trainer::Schedule {
    Constant => "constant": "Constant",
    Cosine => "cosine": "Linear warm-up, then cosine decay to 1% of the peak",
    Plateau => "plateau": "Halve the rate when validation loss has not improved for `patience / 2` epochs",
});

choices!(crate::train::trainer::Vote {
    Mean => "mean": "Mean of the window probabilities",
    Majority => "majority": "Share of windows voting for each class",
});

choices!(crate::train::saved::Rule {
    Sum => "sum": "Mean of the probabilities",
    Product => "product": "Normalised product of the probabilities",
    Agree => "agree": "If all members agree, their mean; otherwise the most confident member",
});

choices!(crate::train::metrics::Normalise {
    Counts => "counts": "Raw counts",
    True => "true": "Rows sum to 1 (recall per true class)",
    Pred => "pred": "Columns sum to 1 (precision per predicted class)",
    All => "all": "Everything sums to 1",
});

choices!(crate::ml::device::DeviceChoice {
    Cpu => "cpu": "burn-flex, the pure-Rust CPU backend (chosen by measurement: see README)",
    Gpu => "gpu": "burn-wgpu on the best GPU wgpu finds",
});

choices!(crate::ml::precision::Precision {
    Auto => "auto": "int16 where the CPU has AVX-512 VNNI, fp32 elsewhere",
    Fp32 => "fp32": "Exact fp32 everywhere (bit-for-bit the reference port)",
    Int16 => "int16": "Integer front end: 11-bit activations, 13-bit weights with per-channel scales, `vpdpwssd`; within the accuracy bar",
    Int8 => "int8": "Integer front end: u8 activations, s8 weights with per-channel scales, `vpdpbusd`; the fastest, but outside the accuracy bar (opt-in)",
});

#[cfg(test)]
mod tests {
    use super::*;

    fn names<T: ValueEnum>() -> Vec<String> {
        T::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value())
            .map(|p| p.get_name().to_string())
            .collect()
    }

    #[test]
    fn issue10_command_line_names_are_unique_and_parse_back() {
        fn check<T: ValueEnum + PartialEq + std::fmt::Debug>() {
            let n = names::<T>();
            let mut unique = n.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), n.len(), "{n:?}");
            for (name, v) in n.iter().zip(T::value_variants()) {
                assert_eq!(T::from_str(name, false).as_ref(), Ok(v));
            }
        }
        check::<crate::library::policy::Mode>();
        check::<crate::train::models::ModelKind>();
        check::<crate::ml::precision::Precision>();
        check::<crate::train::metrics::Normalise>();
        assert_eq!(
            names::<crate::train::models::ModelKind>()[..2],
            ["transfer", "cnn-naive"]
        );
    }
}
