//! The XML answers of the Query protocol.
//!
//! A result is written from its JSON form (the shape serialized with botocore's member
//! names): an object's members become elements, an array's items `<member>` elements (ELBv2
//! lists are not flattened), strings, numbers and booleans text; `null` members are left
//! out. botocore's `QueryParser` reads the result back by the operation's output shape.

use serde_json::Value;

/// `<ActionResponse xmlns=NS><ActionResult>…</ActionResult><ResponseMetadata>
/// <RequestId>…</RequestId></ResponseMetadata></ActionResponse>`. `result` is the output
/// shape as JSON; `None` (or an empty object) writes an empty result element.
pub fn response(action: &str, namespace: &str, result: Option<&Value>, request_id: &str) -> String {
    let mut out = String::with_capacity(512);
    out.push_str(&format!("<{action}Response xmlns=\"{}\">", escape(namespace)));
    match result {
        Some(Value::Object(map)) if !map.is_empty() => {
            out.push_str(&format!("<{action}Result>"));
            write_members(&mut out, map);
            out.push_str(&format!("</{action}Result>"));
        }
        _ => out.push_str(&format!("<{action}Result/>")),
    }
    out.push_str("<ResponseMetadata><RequestId>");
    out.push_str(&escape(request_id));
    out.push_str(&format!("</RequestId></ResponseMetadata></{action}Response>"));
    out
}

/// `<ErrorResponse><Error><Type>Sender</Type><Code>…</Code><Message>…</Message></Error>
/// <RequestId>…</RequestId></ErrorResponse>`.
pub fn error(fault: &str, code: &str, message: &str, request_id: &str) -> String {
    format!(
        "<ErrorResponse><Error><Type>{}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
        escape(fault),
        escape(code),
        escape(message),
        escape(request_id)
    )
}

fn write_members(out: &mut String, map: &serde_json::Map<String, Value>) {
    for (name, value) in map {
        if value.is_null() {
            continue;
        }
        write_element(out, name, value);
    }
}

fn write_element(out: &mut String, name: &str, value: &Value) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    match value {
        Value::Null => {}
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => out.push_str(&escape(s)),
        Value::Array(items) => {
            for item in items {
                write_element(out, "member", item);
            }
        }
        Value::Object(map) => write_members(out, map),
    }
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// Text and attribute values: markup characters as entities, carriage returns as a
/// character reference (a parser would fold them into newlines), and the control
/// characters XML 1.0 cannot carry as U+FFFD.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wraps_the_result_and_lists_members() {
        let result = json!({"Rules": [{"RuleArn": "a", "Gone": null}, {"IsDefault": false}, {"Port": 80}]});
        let xml = response("DescribeRules", "urn:ns", Some(&result), "rid-1");
        assert_eq!(
            xml,
            "<DescribeRulesResponse xmlns=\"urn:ns\"><DescribeRulesResult><Rules>\
             <member><RuleArn>a</RuleArn></member><member><IsDefault>false</IsDefault></member>\
             <member><Port>80</Port></member></Rules>\
             </DescribeRulesResult><ResponseMetadata><RequestId>rid-1</RequestId></ResponseMetadata>\
             </DescribeRulesResponse>"
        );
    }

    #[test]
    fn an_empty_result_is_an_empty_element() {
        let xml = response("DeleteRule", "urn:ns", Some(&json!({})), "r");
        assert!(xml.contains("<DeleteRuleResult/>"), "{xml}");
        assert_eq!(xml, response("DeleteRule", "urn:ns", None, "r"));
    }

    #[test]
    fn errors_carry_type_code_and_message() {
        let xml = error(
            "Sender",
            "TargetGroupNotFound",
            "One or more target groups not found <x>",
            "r",
        );
        assert_eq!(
            xml,
            "<ErrorResponse><Error><Type>Sender</Type><Code>TargetGroupNotFound</Code>\
             <Message>One or more target groups not found &lt;x&gt;</Message></Error>\
             <RequestId>r</RequestId></ErrorResponse>"
        );
    }

    #[test]
    fn escapes_markup_and_unencodable_characters() {
        assert_eq!(
            escape("a&b<c>\"d'\r\n\t\u{1}"),
            "a&amp;b&lt;c&gt;&quot;d&apos;&#13;\n\t\u{fffd}"
        );
    }
}
