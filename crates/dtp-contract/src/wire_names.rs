//! `wire_names!`: the one way an enum of states, kinds or scopes gets its names on the wire
//! and in the database: `ALL` in order, `as_str`, `parse`, `Display` as the name, and
//! `TryFrom<String>`, so that a store reading a name column gets the variant or an error.

/// A name that no variant has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    /// The enum's name.
    pub of: &'static str,
    pub name: String,
}

impl std::fmt::Display for UnknownName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} is not a known {}", self.name, self.of)
    }
}

impl std::error::Error for UnknownName {}

/// Gives `$ty` the names listed: `ALL` (every variant, in the order listed), `as_str`,
/// `parse` (the variant named so, if any), `Display`, and `TryFrom<String>` (an
/// `UnknownName` for a name no variant has).
///
/// ```
/// #[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// enum Light { Red, Green }
/// dtp_contract::wire_names!(Light { Red => "RED", Green => "GREEN" });
/// assert_eq!(Light::parse("GREEN"), Some(Light::Green));
/// assert_eq!(Light::Red.to_string(), "RED");
/// assert_eq!(Light::ALL, [Light::Red, Light::Green]);
/// assert!(Light::try_from("BLUE".to_owned()).is_err());
/// ```
#[macro_export]
macro_rules! wire_names {
    ($ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Every variant, in order.
            pub const ALL: [$ty; [$($name),+].len()] = [$($ty::$variant),+];

            /// The name used on the wire and in the database.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)+
                }
            }

            /// The variant called `name`, if any.
            pub fn parse(name: &str) -> Option<Self> {
                Self::ALL.into_iter().find(|v| v.as_str() == name)
            }
        }

        impl ::std::convert::TryFrom<String> for $ty {
            type Error = $crate::UnknownName;

            fn try_from(name: String) -> Result<Self, Self::Error> {
                Self::parse(&name).ok_or($crate::UnknownName {
                    of: stringify!($ty),
                    name,
                })
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
