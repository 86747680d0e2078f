//! `wire_names!`: the one way an enum of states, kinds or scopes gets its names on the wire
//! and in the database: `ALL` in order, `as_str`, `parse`, and `Display` as the name.

/// Gives `$ty` the names listed: `ALL` (every variant, in the order listed), `as_str`,
/// `parse` (the variant named so, if any) and `Display`.
///
/// ```
/// #[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// enum Light { Red, Green }
/// dtp_contract::wire_names!(Light { Red => "RED", Green => "GREEN" });
/// assert_eq!(Light::parse("GREEN"), Some(Light::Green));
/// assert_eq!(Light::Red.to_string(), "RED");
/// assert_eq!(Light::ALL, [Light::Red, Light::Green]);
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

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
