//! Choosing the compute device explicitly (burn's default would prefer wgpu).

use burn::tensor::Device;

/// Where models run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum DeviceChoice {
    /// burn-flex, the pure-Rust CPU backend (chosen by measurement: see README).
    #[default]
    Cpu,
    /// burn-wgpu on the best GPU wgpu finds.
    Gpu,
}

/// Why the device asked for cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// Built without the `gpu` feature.
    #[error("this build has no GPU support (rebuild with --features gpu)")]
    NotBuilt,
    /// wgpu found no adapter.
    #[error("no usable GPU: wgpu found no adapter (use --device cpu)")]
    NoAdapter,
    /// The probe computation came back wrong.
    #[error("the GPU (burn-wgpu) gave a wrong result for a probe computation")]
    WrongResult,
}

impl DeviceChoice {
    /// The burn device, or why it cannot be used.
    pub fn device(self) -> Result<Device, DeviceError> {
        match self {
            DeviceChoice::Cpu => Ok(Device::flex()),
            #[cfg(feature = "gpu")]
            DeviceChoice::Gpu => probe_gpu(),
            #[cfg(not(feature = "gpu"))]
            DeviceChoice::Gpu => Err(DeviceError::NotBuilt),
        }
    }
}

/// burn-wgpu panics when no adapter exists; probe with a tiny computation first so
/// `--device gpu` on a machine without a GPU is a clear error, not a crash.
#[cfg(feature = "gpu")]
fn probe_gpu() -> Result<Device, DeviceError> {
    use burn::tensor::{Tensor, TensorData};
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let probe = std::panic::catch_unwind(|| {
        let device = Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
        let t: Tensor<1> = Tensor::from_data(TensorData::new(vec![1.0f32, 2.0], [2]), &device);
        let sum = t.sum().into_data().try_to_vec::<f32>().ok()?;
        (sum.first() == Some(&3.0)).then_some(device)
    });
    std::panic::set_hook(previous);
    match probe {
        Ok(Some(device)) => Ok(device),
        Ok(None) => Err(DeviceError::WrongResult),
        Err(_) => Err(DeviceError::NoAdapter),
    }
}
