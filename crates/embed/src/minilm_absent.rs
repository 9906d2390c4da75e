//! [`MiniLm`] in a build without the `minilm` feature: a type with no values.

use crate::EmbedError;

/// The sentence encoder, absent from this build (the `minilm` feature is off): no value of this
/// type can exist, so a server built without the feature never has a model and answers as one
/// started without `--model`.
#[derive(Debug)]
pub enum MiniLm {}

impl MiniLm {
    /// Never called: there is no `MiniLm` to call it on.
    ///
    /// # Errors
    /// None; the signature is the encoder's.
    pub fn embed<S: AsRef<str>>(&self, _texts: &[S]) -> Result<Vec<Vec<f32>>, EmbedError> {
        match *self {}
    }
}
