//! Datasets and splits on the shared GTZAN clips and the fault-filtered split lists.

use genretag::train::dataset::{Dataset, from_lists, grouped, gtzan_group};

use crate::common::shared;

#[test]
fn issue5_gtzan_folder_and_fault_filtered_lists() {
    let (Some(data), Some(splits)) = (
        shared("data/gtzan"),
        shared("data/splits/gtzan-fault-filtered"),
    ) else {
        return;
    };
    let ds = Dataset::from_folder(&data).expect("reads");
    assert_eq!(ds.items.len(), 180);
    assert_eq!(ds.labels.len(), 10);
    assert_eq!(ds.counts().iter().sum::<usize>(), 180);

    let s = from_lists(
        &ds,
        &splits.join("train_filtered.txt"),
        Some(&splits.join("valid_filtered.txt")),
        &splits.join("test_filtered.txt"),
    )
    .expect("lists read");
    let listed = s.train.len() + s.val.len() + s.test.len() + s.missing.len();
    eprintln!(
        "fault-filtered split over the shared clips: train {}, valid {}, test {}; {} of {listed} listed files missing",
        s.train.len(),
        s.val.len(),
        s.test.len(),
        s.missing.len()
    );
    assert_eq!(listed, 443 + 197 + 290);
    assert!(!s.missing.is_empty());
    // No clip is in two parts.
    let mut all: Vec<usize> = s
        .train
        .iter()
        .chain(&s.val)
        .chain(&s.test)
        .copied()
        .collect();
    let n = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), n);

    let g = grouped(&ds, &|it| gtzan_group(it, 5), 0.2, 0.1, 1, "gtzan-block-5");
    assert_eq!(g.train.len() + g.val.len() + g.test.len(), 180);
}
