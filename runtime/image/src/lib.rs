//! outport-image
