//! The op-list summary each request's log line carries, e.g.
//! `transform(w=800,fit=cover) draw(1) → image/webp q85`.

use imgbind_wire::OutputOptions;

/// A short, bounded summary of a `/transform` op list for the log, e.g.
/// `transform(w=800,fit=cover) draw(1) → image/webp q85`. Built from the raw JSON so requests
/// that fail validation are summarised too.
pub(crate) fn ops_summary(transforms: Option<&str>, output: Option<&OutputOptions>) -> String {
    const MAX: usize = 300;
    let mut parts = Vec::new();
    match transforms.map(serde_json::from_str::<serde_json::Value>) {
        Some(Ok(serde_json::Value::Array(steps))) => {
            for step in &steps {
                parts.push(step_summary(step));
            }
        }
        Some(_) => parts.push("(unparsable transforms)".to_owned()),
        None => {}
    }
    let mut summary = parts.join(" ");
    if let Some(output) = output {
        if !summary.is_empty() {
            summary.push(' ');
        }
        summary.push_str("→ ");
        summary.push_str(output.format.content_type());
        if let Some(quality) = output.quality {
            summary.push_str(&format!(" q{quality}"));
        }
    }
    if summary.chars().count() > MAX {
        summary = summary.chars().take(MAX).collect::<String>() + "…";
    }
    summary
}

fn step_summary(step: &serde_json::Value) -> String {
    let Some(object) = step.as_object() else {
        return "?".to_owned();
    };
    if let Some(index) = object.get("drawImageIndex") {
        let target = object
            .get("targetImageIndex")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        let onto = if target == 0 {
            String::new()
        } else {
            format!("→{target}")
        };
        return format!("draw({index}{onto})");
    }
    let image = object
        .get("imageIndex")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    // width and height first, then the rest by name (whatever order the JSON map keeps).
    let mut entries: Vec<_> = object
        .iter()
        .filter(|(key, _)| key.as_str() != "imageIndex")
        .collect();
    entries.sort_by_key(|(key, _)| match key.as_str() {
        "width" => (0, ""),
        "height" => (1, ""),
        other => (2, other),
    });
    let options: Vec<String> = entries
        .into_iter()
        .map(|(key, value)| {
            let key = match key.as_str() {
                "width" => "w",
                "height" => "h",
                other => other,
            };
            let value = match value {
                serde_json::Value::String(s) => s.chars().take(24).collect(),
                serde_json::Value::Object(_) => "{…}".to_owned(),
                serde_json::Value::Array(_) => "[…]".to_owned(),
                other => other.to_string(),
            };
            format!("{key}={value}")
        })
        .collect();
    if image == 0 {
        format!("transform({})", options.join(","))
    } else {
        format!("transform#{image}({})", options.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgbind_wire::OutputFormat;

    #[test]
    fn summarises_op_lists() {
        let output = OutputOptions {
            quality: Some(85),
            ..OutputOptions::new(OutputFormat::Webp)
        };
        assert_eq!(
            ops_summary(
                Some(
                    r#"[{"imageIndex":0,"width":800,"fit":"cover"},{"imageIndex":1,"rotate":90},{"drawImageIndex":1,"targetImageIndex":0,"top":5}]"#
                ),
                Some(&output)
            ),
            "transform(w=800,fit=cover) transform#1(rotate=90) draw(1) → image/webp q85"
        );
        assert_eq!(ops_summary(Some("{"), None), "(unparsable transforms)");
        assert_eq!(
            ops_summary(None, Some(&OutputOptions::new(OutputFormat::Png))),
            "→ image/png"
        );
        let long = format!("[{}]", vec![r#"{"imageIndex":0,"blur":5}"#; 200].join(","));
        assert!(ops_summary(Some(&long), None).chars().count() <= 301);
    }
}
