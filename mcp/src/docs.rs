//! The proto's comments, read from a descriptor set with source info (the one each server's
//! build already makes: `dbforge_server::pb::FILE_DESCRIPTOR_SET` for reflection,
//! `dbforge::pb::FILE_DESCRIPTOR_SET` in the SDK), so that the tools describe themselves in the
//! words the SDKs' users read and the two cannot drift.

use std::collections::HashMap;

use prost::Message;
use prost_types::FileDescriptorSet;

/// Field number of `FileDescriptorProto.message_type` in a source location path.
const MESSAGE_TYPE: i32 = 4;
/// Field number of `FileDescriptorProto.service`.
const SERVICE: i32 = 6;
/// Field number of `DescriptorProto.field` and of `ServiceDescriptorProto.method`.
const FIELD_OR_METHOD: i32 = 2;

/// The leading comment of every top-level message's field and every service's method, by
/// `Message.field` and `Service.Method` (package left out).
#[derive(Debug, Clone, Default)]
pub struct Docs(HashMap<String, String>);

impl Docs {
    /// Reads an encoded `FileDescriptorSet`; one that does not decode gives no comments (and
    /// every description taken from the proto is then empty, which the servers' tests catch).
    pub fn new(descriptor_set: &[u8]) -> Self {
        let mut out = HashMap::new();
        let Ok(set) = FileDescriptorSet::decode(descriptor_set) else {
            return Docs(out);
        };
        for file in &set.file {
            let Some(info) = &file.source_code_info else {
                continue;
            };
            for loc in &info.location {
                let Some(text) = loc.leading_comments.as_deref() else {
                    continue;
                };
                let at = |i: i32| usize::try_from(i).unwrap_or(usize::MAX);
                let name = match loc.path.as_slice() {
                    [MESSAGE_TYPE, m, FIELD_OR_METHOD, f] => file
                        .message_type
                        .get(at(*m))
                        .and_then(|m| Some((m, m.field.get(at(*f))?)))
                        .map(|(m, f)| format!("{}.{}", m.name(), f.name())),
                    [SERVICE, s, FIELD_OR_METHOD, r] => file
                        .service
                        .get(at(*s))
                        .and_then(|s| Some((s, s.method.get(at(*r))?)))
                        .map(|(s, r)| format!("{}.{}", s.name(), r.name())),
                    _ => None,
                };
                if let Some(name) = name {
                    out.insert(name, text.to_owned());
                }
            }
        }
        Docs(out)
    }

    /// The first paragraph of the comment on `Message.field` or `Service.Method`, on one line;
    /// empty when there is none.
    pub fn first_paragraph(&self, name: &str) -> String {
        let Some(text) = self.0.get(name) else {
            return String::new();
        };
        text.lines()
            .map(str::trim)
            .take_while(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }
}
