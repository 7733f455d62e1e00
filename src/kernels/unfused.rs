//! placeholder
/// Elementary kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Elementary { RowMax }
impl Elementary { pub fn name(self) -> &'static str { "row_max" } }
