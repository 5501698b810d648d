//! Domain types and rules shared by every layer of Agentry.
//!
//! Nothing here does IO: values are parsed ("parse, don't validate") into types that can only
//! hold valid data, so the layers above never re-check them.

pub mod cursor;
pub mod email;
pub mod id;
pub mod password;
pub mod role;
pub mod schema;
pub mod slug;
pub mod text;
pub mod validation;

pub use email::Email;
pub use id::new_id;
pub use password::Password;
pub use role::Role;
pub use slug::Slug;
pub use validation::FieldErrors;
