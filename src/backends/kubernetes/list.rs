//! List answers read page by page: each page is parsed straight from its text, keeping only
//! the projected fields of each item (nothing else of an object is ever built).

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use crate::engine::projection::Projection;

/// Objects asked for per request when a tool wants a whole list (kubectl's chunk size is
/// 500; larger pages mean fewer round trips, each page's text is still only a few MB).
pub const PAGE_SIZE: u32 = 1000;

/// One page of a list: its items (projected) and how the list goes on.
#[derive(Debug, Default)]
pub struct Page {
    pub items: Vec<Value>,
    /// `metadata.continue` when non-empty.
    pub continue_token: Option<String>,
    /// `metadata.remainingItemCount`, as the server sent it.
    pub remaining: Option<Value>,
}

/// Parse a list answer (`{kind, apiVersion, metadata, items}`), items projected.
pub fn parse_page(text: &str, projection: Option<&Projection>) -> Result<Page, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let page = PageSeed(projection).deserialize(&mut de)?;
    de.end()?;
    Ok(page)
}

struct PageSeed<'p>(Option<&'p Projection>);

impl<'de> DeserializeSeed<'de> for PageSeed<'_> {
    type Value = Page;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Page, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PageSeed<'_> {
    type Value = Page;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Kubernetes list object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Page, A::Error> {
        let mut page = Page::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "items" => {
                    let items = match self.0 {
                        Some(p) => map.next_value_seed(ProjectedSeed(p))?,
                        None => map.next_value::<Value>()?,
                    };
                    if let Value::Array(items) = items {
                        page.items = items;
                    }
                }
                "metadata" => {
                    let meta: Value = map.next_value()?;
                    page.continue_token =
                        meta.get("continue").and_then(Value::as_str).filter(|c| !c.is_empty()).map(str::to_owned);
                    page.remaining = meta.get("remainingItemCount").cloned();
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(page)
    }
}

/// A value parsed through a projection (arrays are transparent: each item is projected).
struct ProjectedSeed<'p>(&'p Projection);

impl<'de> DeserializeSeed<'de> for ProjectedSeed<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.0.parse(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_keep_only_projected_fields_and_the_page_says_how_to_go_on() {
        let mut p = Projection::default();
        p.keep(&["metadata".into(), "name".into()]);
        p.keep(&["status".into()]);
        let text = r#"{"kind":"PodList","apiVersion":"v1","metadata":{"continue":"abc","remainingItemCount":3},
            "items":[{"metadata":{"name":"a","labels":{"x":"y"}},"spec":{"containers":[{"name":"c"}]},"status":{"phase":"Running"}},
                     {"metadata":{"name":"b"},"status":{"phase":"Failed","reason":"Evicted"}}]}"#;
        let page = parse_page(text, Some(&p)).unwrap();
        assert_eq!(
            Value::Array(page.items),
            serde_json::json!([{"metadata": {"name": "a"}, "status": {"phase": "Running"}},
                               {"metadata": {"name": "b"}, "status": {"phase": "Failed", "reason": "Evicted"}}])
        );
        assert_eq!(page.continue_token.as_deref(), Some("abc"));
        assert_eq!(page.remaining, Some(serde_json::json!(3)));
        let whole = parse_page(text, None).unwrap();
        assert_eq!(whole.items[0]["metadata"]["labels"]["x"], "y");
        let last = parse_page(r#"{"metadata":{"continue":""},"items":null}"#, None).unwrap();
        assert!(last.items.is_empty() && last.continue_token.is_none());
    }
}
