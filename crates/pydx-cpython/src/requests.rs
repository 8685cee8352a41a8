//! The HTTP request a thread is serving, read from the WSGI `environ` or
//! the ASGI `scope` that a frame of its stack holds in a local variable.
//!
//! Every WSGI application is called as `app(environ, start_response)` and
//! every ASGI one as `app(scope, receive, send)`, and the frameworks pass
//! those on (Django's `WSGIHandler.__call__`, Flask's `wsgi_app`,
//! Starlette's routing), so a frame with a local `environ` or `scope` that
//! is a dict with the request's method and path is on the stack of every
//! thread serving a request, without any code in the target.

use pydx_libraries::{find_role, plays, RequestCounter, Role};
use pydx_remote::{MemoryReader, ReadExt};

use crate::error::WalkError;
use crate::frames::{CodeInfo, Frame};
use crate::objects::Value;
use crate::reader::{i32_at, u64_at, PythonReader};

/// Longest method read.
const MAX_METHOD_CHARS: usize = 16;
/// Longest path read.
const MAX_PATH_CHARS: usize = 512;
/// How many times a request count is read while it keeps changing.
const COUNT_READ_ATTEMPTS: usize = 3;
/// Most route objects whose template is kept.
const MAX_ROUTES: usize = 4096;
/// Most local names looked at per code object.
const MAX_NAMES: usize = 512;

/// An HTTP request being served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without the query string.
    pub path: String,
    /// The address of the `environ` or `scope` dict: another request's is
    /// another object (though a freed one's address can be reused).
    pub object: u64,
    /// The route template the framework matched (`/orders/{order_id}`,
    /// `/orders/<int:order_id>`), once it has routed the request.
    pub route: Option<String>,
}

impl HttpRequest {
    /// The endpoint: the method and the route template the framework
    /// matched, as the app declares it; before routing (or when the
    /// framework keeps none), the path with its identifiers (numbers,
    /// UUIDs, long hex strings) replaced by `{id}`, so that `GET /orders/17`
    /// and `GET /orders/18` are one endpoint.
    pub fn endpoint(&self) -> String {
        match &self.route {
            Some(route) => format!("{} {route}", self.method),
            None => self.path_endpoint(),
        }
    }

    /// The method and the path with its identifiers replaced by `{id}`,
    /// whether or not the request was routed.
    pub fn path_endpoint(&self) -> String {
        let path: Vec<String> = self
            .path
            .split('/')
            .map(|segment| {
                if is_identifier_segment(segment) {
                    "{id}".to_string()
                } else {
                    segment.to_string()
                }
            })
            .collect();
        format!("{} {}", self.method, path.join("/"))
    }
}

/// The request methods pydx labels samples with: HTTP's (RFC 9110, and
/// PATCH), WebDAV's, and `WEBSOCKET` for a websocket scope. A dict read
/// while the server fills it can pair the method's key with another
/// entry's value that looks like one (`HOST`, a header's name): a method
/// outside this list is taken for such a read, and the request is left
/// unlabelled rather than labelled wrong.
const METHODS: [&str; 19] = [
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "DELETE",
    "CONNECT",
    "OPTIONS",
    "TRACE",
    "PATCH",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "REPORT",
    "SEARCH",
    "WEBSOCKET",
];

/// Whether `text` is a request method pydx knows (see [`METHODS`]).
fn is_method(text: &str) -> bool {
    METHODS.contains(&text)
}

/// Whether a path segment is an identifier rather than a route word.
fn is_identifier_segment(segment: &str) -> bool {
    let digits = !segment.is_empty() && segment.chars().all(|c| c.is_ascii_digit());
    let hex_id = segment.len() >= 8
        && segment.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
        && segment.chars().any(|c| c.is_ascii_digit());
    digits || hex_id
}

/// Where a code object keeps the request, if it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestSlot {
    /// Local number `n` is the WSGI `environ`.
    Environ(usize),
    /// Local number `n` is the ASGI `scope`.
    Scope(usize),
}

/// A server's request count found on a stack: the object that keeps it,
/// which lives as long as the server, and the way to read it.
#[derive(Clone, Copy)]
pub struct RequestCount {
    /// The `self` of the server's loop frame.
    owner: u64,
    counter: RequestCounter,
}

impl std::fmt::Debug for RequestCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{:#x}", self.counter.attributes.join("."), self.owner)
    }
}

impl<M: MemoryReader> PythonReader<M> {
    /// The request count of the server whose loop runs in `frames`: a
    /// gunicorn worker's or a uvicorn server's; `None` when no frame of
    /// `frames` runs such a loop.
    pub fn find_request_count(&mut self, frames: &[Frame]) -> Option<RequestCount> {
        frames.iter().rev().find_map(|frame| {
            let counter = find_role(
                &frame.code.qualname,
                &frame.code.filename,
                |role| match role {
                    Role::CountsRequests(counter) => Some(counter),
                    _ => None,
                },
            )?;
            let owner = self.object_local(frame, "self").ok()??;
            let kind = self.type_of(owner).ok()?;
            if counter.not_counting.contains(&kind.name.as_str()) {
                return None;
            }
            let count = RequestCount { owner, counter };
            self.read_request_count(count).map(|_| count)
        })
    }

    /// How many requests the server has served so far. The count is a new
    /// `int` object after every request: it is read again until the
    /// attribute still names the object whose value was read, so that the
    /// value is not that of an `int` freed and reused meanwhile.
    pub fn read_request_count(&mut self, count: RequestCount) -> Option<u64> {
        let (&last, path) = count.counter.attributes.split_last()?;
        let mut holder = count.owner;
        for name in path {
            holder = self.instance_attr(holder, name).ok()??;
        }
        for _ in 0..COUNT_READ_ATTEMPTS {
            let object = self.instance_attr(holder, last).ok()??;
            let value = self.read_value(object).ok()?;
            if self.instance_attr(holder, last).ok()? != Some(object) {
                continue;
            }
            return match value {
                Value::Int(served) => u64::try_from(served).ok(),
                _ => None,
            };
        }
        None
    }

    /// The request one of `frames` is serving: the first frame, from the
    /// outermost, whose `environ` or `scope` local holds an HTTP request.
    pub fn http_request(&mut self, frames: &[Frame]) -> Option<HttpRequest> {
        for frame in frames.iter().rev() {
            let Some(slot) = self.request_slot(&frame.code) else {
                continue;
            };
            if let Ok(Some(mut request)) = self.request_in(frame, slot) {
                if request.route.is_none() {
                    request.route = self.django_route(frames);
                }
                return Some(request);
            }
        }
        None
    }

    /// The `str` at the end of `attributes` from a route object that lives
    /// as long as the app, kept once read.
    fn route_template(&mut self, route: u64, attributes: &[&str]) -> Option<String> {
        if let Some(template) = self.routes.get(&route) {
            return Some(template.clone());
        }
        let mut object = route;
        for name in attributes {
            object = self.instance_attr(object, name).ok()??;
        }
        if !self.is_str(object).ok()? {
            return None;
        }
        let template = self.read_str_limited(object, MAX_PATH_CHARS).ok()?;
        if self.routes.len() >= MAX_ROUTES {
            self.routes.clear();
        }
        self.routes.insert(route, template.clone());
        Some(template)
    }

    /// Django's route for the request a `BaseHandler._get_response` frame
    /// of `frames` handles, once URL resolution has set
    /// `request.resolver_match` (its `route`, like `orders/<int:pk>`).
    fn django_route(&mut self, frames: &[Frame]) -> Option<String> {
        let frame = frames
            .iter()
            .find(|f| plays(&f.code.qualname, &f.code.filename, Role::DjangoRequest))?;
        let request = self.object_local(frame, "request").ok()??;
        let resolved = self.instance_attr(request, "resolver_match").ok()??;
        let route = self.instance_attr(resolved, "route").ok()??;
        if !self.is_str(route).ok()? {
            return None;
        }
        let route = self.read_str_limited(route, MAX_PATH_CHARS).ok()?;
        Some(format!("/{}", route.trim_start_matches('/')))
    }

    /// Which local of `code` holds a request, worked out once per code object.
    fn request_slot(&mut self, code: &CodeInfo) -> Option<RequestSlot> {
        if let Some(slot) = code.request_slot.get() {
            return *slot;
        }
        let slot = self.find_request_slot(code.addr).ok().flatten();
        let _ = code.request_slot.set(slot);
        slot
    }

    fn find_request_slot(&mut self, code: u64) -> Result<Option<RequestSlot>, WalkError> {
        let layout = self.layout.clone();
        let header = self
            .memory
            .read_vec(code, layout.code_size as usize, 0x400)?;
        let pointer = |offset| u64_at(&header, offset).unwrap_or(0);
        let names_tuple = pointer(layout.code_varnames);
        if names_tuple == 0 {
            return Ok(None);
        }
        let mut names = self.sequence_items(names_tuple, MAX_NAMES)?;
        if layout.code_localspluskinds.is_none() {
            // ≤3.10: co_varnames holds the plain locals only.
            let nlocals = layout
                .code_nlocals
                .and_then(|o| i32_at(&header, o))
                .unwrap_or(0)
                .clamp(0, MAX_NAMES as i32) as usize;
            names.truncate(nlocals);
        }
        for (index, name) in names.into_iter().enumerate() {
            match self.read_str_limited(name, 8).as_deref() {
                Ok("environ") => return Ok(Some(RequestSlot::Environ(index))),
                Ok("scope") => return Ok(Some(RequestSlot::Scope(index))),
                _ => {}
            }
        }
        Ok(None)
    }

    /// The request held in `frame`'s local at `slot`, if it holds one.
    fn request_in(
        &mut self,
        frame: &Frame,
        slot: RequestSlot,
    ) -> Result<Option<HttpRequest>, WalkError> {
        let index = match slot {
            RequestSlot::Environ(index) | RequestSlot::Scope(index) => index,
        };
        let Some(dict) = self.object_in_slot(frame, index)? else {
            return Ok(None);
        };
        let (method_key, path_key) = match slot {
            RequestSlot::Environ(_) => ("REQUEST_METHOD", "PATH_INFO"),
            RequestSlot::Scope(_) => {
                let kind = match self.dict_get_str(dict, "type")? {
                    Some(kind) => self.read_str_limited(kind, 16)?,
                    None => return Ok(None),
                };
                if kind != "http" && kind != "websocket" {
                    return Ok(None);
                }
                ("method", "path")
            }
        };
        let items = self.dict_items(dict, 256)?;
        let method = match self.find_str_key(&items, method_key)? {
            Some(method) => self.read_str_limited(method, MAX_METHOD_CHARS)?,
            // A websocket scope has no method.
            None if matches!(slot, RequestSlot::Scope(_)) => "WEBSOCKET".to_string(),
            None => return Ok(None),
        };
        let Some(path) = self.find_str_key(&items, path_key)? else {
            return Ok(None);
        };
        let path = self.read_str_limited(path, MAX_PATH_CHARS)?;
        let path = if path.is_empty() {
            "/".to_string()
        } else {
            path
        };
        // A dict read while the server fills or reuses it can pair a key
        // with another key's value (a path of "GET", a method of "HOST"):
        // what is not a known method and a path is no request.
        if !is_method(&method) || !(path.starts_with('/') || path == "*") {
            return Ok(None);
        }
        let route = match slot {
            // Starlette and FastAPI put the matched route in the scope.
            RequestSlot::Scope(_) => match self.find_str_key(&items, "route")? {
                Some(route) => self.route_template(route, &["path"]),
                None => None,
            },
            // Flask's request, through werkzeug's back-reference.
            RequestSlot::Environ(_) => match self.find_str_key(&items, "werkzeug.request")? {
                Some(request) => match self.instance_attr(request, "url_rule").ok().flatten() {
                    Some(rule) => self.route_template(rule, &["rule"]),
                    None => None,
                },
                None => None,
            },
        };
        Ok(Some(HttpRequest {
            method,
            path,
            object: dict,
            route,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(method: &str, path: &str) -> String {
        HttpRequest {
            method: method.into(),
            path: path.into(),
            object: 0,
            route: None,
        }
        .endpoint()
    }

    #[test]
    fn only_known_methods_are_methods() {
        assert!(is_method("GET") && is_method("PROPFIND") && is_method("WEBSOCKET"));
        assert!(!is_method("") && !is_method("/orders") && !is_method("get"));
        // A header's name read in the method's place.
        assert!(!is_method("HOST") && !is_method("USER_AGENT"));
    }

    #[test]
    fn identifiers_in_paths_become_placeholders() {
        assert_eq!(endpoint("GET", "/orders/17"), "GET /orders/{id}");
        assert_eq!(
            endpoint("PUT", "/users/3f2b9c1e-8a7d-4e2a-9b1c-123456789abc/avatar"),
            "PUT /users/{id}/avatar"
        );
        assert_eq!(endpoint("GET", "/health"), "GET /health");
        assert_eq!(endpoint("GET", "/"), "GET /");
        assert_eq!(
            endpoint("GET", "/v2/reports/deadbeef"),
            "GET /v2/reports/deadbeef"
        );
        assert_eq!(endpoint("GET", "/blobs/deadbeef01"), "GET /blobs/{id}");
    }
}
