//! Enums for the values an AWS API field takes, declared with their wire strings in one place.

/// Declares an enum of an AWS field's values with the wire string of each. A value slipway does
/// not know is kept as `Other`, as AWS wrote it: it shows in a diff and is never mistaken for a
/// known one. Serialises as the wire string, so plans read as AWS writes them.
macro_rules! aws_values {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A value slipway does not know, kept as AWS wrote it.
            Other(String),
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $wire,)+
                    $name::Other(value) => value,
                }
            }

            pub fn parse(value: &str) -> $name {
                match value {
                    $($wire => $name::$variant,)+
                    other => $name::Other(other.to_string()),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

#[cfg(test)]
mod tests {
    aws_values!(Colour { Red = "RED", Blue = "BLUE" });

    #[test]
    fn known_values_round_trip_and_unknown_ones_are_kept() {
        assert_eq!(Colour::parse("RED"), Colour::Red);
        assert_eq!(Colour::Blue.as_str(), "BLUE");
        assert_eq!(Colour::parse("GREEN"), Colour::Other("GREEN".into()));
        assert_eq!(Colour::parse("GREEN").as_str(), "GREEN");
        assert_eq!(serde_json::to_value(Colour::Red).unwrap(), serde_json::json!("RED"));
    }
}
