//! rms_norm (in progress)
