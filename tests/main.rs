//! Integration tests: one binary. Modules by area.

mod batch;
mod cli_classify;
mod cli_tag;
mod common;
mod crash;
mod datasets;
mod decode;
mod fuzz;
#[cfg(feature = "gui")]
mod gui;
mod musicnn_golden;
mod precision;
mod safety;
mod scan;
mod service;
mod tags;
mod training;
mod trust;
