//! What the instances of one run share.

use outport_image::Converter;

/// What the instances of one run share.
#[derive(Debug, Default)]
pub struct RunContext {
    /// Layer conversions (`convert-layers`), each made once per run.
    pub converter: Converter,
    /// The source date epoch passed in every request.
    pub source_date_epoch: Option<u64>,
}
