//! Integration tests: one binary. Modules by area.

mod cli_classify;
mod common;
mod decode;
mod musicnn_golden;
mod tags;
