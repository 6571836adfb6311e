//! Enums whose values each have one label, declared with the label in one place.

/// Declares a closed enum with one label per value: `ALL` lists the values in declaration order,
/// `as_str` gives the label, `parse` reads it back, and serde and `Display` use the same label,
/// so metric labels, `/status` JSON and logs cannot disagree. (For the values of an AWS field,
/// where unknown ones must be kept, see `aws_values!`.)
macro_rules! labels {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $label:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: [$name; <[&str]>::len(&[$($label),+])] = [$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $label,)+
                }
            }

            pub fn parse(label: &str) -> Option<$name> {
                match label {
                    $($label => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<$name, D::Error> {
                let label = String::deserialize(deserializer)?;
                $name::parse(&label).ok_or_else(|| serde::de::Error::unknown_variant(&label, &[$($label),+]))
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
    labels!(
        enum Light {
            Red = "red",
            Green = "green",
        }
    );

    #[test]
    fn every_value_has_one_label_for_serde_display_and_parse() {
        assert_eq!(Light::ALL, [Light::Red, Light::Green]);
        for light in Light::ALL {
            let json = serde_json::to_value(light).unwrap();
            assert_eq!(json, serde_json::json!(light.as_str()));
            assert_eq!(serde_json::from_value::<Light>(json).unwrap(), light);
            assert_eq!(light.to_string(), light.as_str());
            assert_eq!(Light::parse(light.as_str()), Some(light));
        }
        assert!(serde_json::from_value::<Light>(serde_json::json!("blue")).is_err());
    }
}
