//! Specs: the YAML documents admins write, their schemas, loading and compilation.

pub mod compile;
pub mod diagnostic;
pub mod embedded;
pub mod load;
pub mod model;
pub mod schema;
pub mod yaml;

pub use diagnostic::Diagnostic;
