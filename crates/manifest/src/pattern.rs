//! URL patterns of interfaces: `/team/:teamUUID/tasks/:taskUUID`.
//!
//! A pattern is a list of segments, each static text or a `:name` parameter.
//! Two patterns are the *same interface* when their [`UrlPattern::shape`]s are
//! equal: parameter names are ignored (`/x/:a` ≡ `/x/:b`).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    Static(String),
    Param(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlPattern {
    raw: String,
    segments: Vec<Segment>,
}

impl UrlPattern {
    /// Parse a pattern; the error says what is wrong with it.
    pub fn parse(raw: &str) -> Result<UrlPattern, String> {
        if !raw.starts_with('/') {
            return Err(format!("url {raw:?} must start with '/'"));
        }
        let optional = raw.split('/').find(|seg| seg.starts_with(':') && seg.ends_with('?'));
        if let Some(seg) = optional {
            return Err(format!(
                "url {raw:?}: optional parameters ({seg}) are not supported; declare one entry with the parameter and one without"
            ));
        }
        if raw.contains('?') || raw.contains('#') {
            return Err(format!("url {raw:?} must be a path only; put query parameters under `query:`"));
        }
        let mut segments = Vec::new();
        let body = raw.trim_end_matches('/');
        if !body.is_empty() {
            for (i, seg) in body[1..].split('/').enumerate() {
                if seg.is_empty() {
                    return Err(format!("url {raw:?} has an empty segment at position {}", i + 1));
                }
                if let Some(name) = seg.strip_prefix(':') {
                    let valid = !name.is_empty()
                        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        && !name.starts_with(|c: char| c.is_ascii_digit());
                    if !valid {
                        return Err(format!("url {raw:?}: parameter {seg:?} needs a name of letters, digits or '_'"));
                    }
                    if segments.iter().any(|s| matches!(s, Segment::Param(n) if n == name)) {
                        return Err(format!("url {raw:?}: parameter :{name} appears twice"));
                    }
                    segments.push(Segment::Param(name.to_string()));
                } else {
                    if seg.contains('*') {
                        return Err(format!(
                            "url {raw:?}: wildcards ({seg:?}) are not supported; an interface is one route, with \
                             parameters as whole segments like `:taskUUID`"
                        ));
                    }
                    if seg.contains(':') || seg.contains('{') {
                        return Err(format!(
                            "url {raw:?}: segment {seg:?} mixes text and parameter syntax; a parameter is a whole segment like `:taskUUID`"
                        ));
                    }
                    segments.push(Segment::Static(seg.to_string()));
                }
            }
        }
        Ok(UrlPattern { raw: raw.to_string(), segments })
    }

    /// The parameters of a path (split into segments) this pattern matches.
    pub fn captures(&self, segs: &[&str]) -> Option<Vec<(String, String)>> {
        if segs.len() != self.segments.len() {
            return None;
        }
        let mut out = Vec::new();
        for (seg, s) in self.segments.iter().zip(segs) {
            match seg {
                Segment::Static(t) if t == s => {}
                Segment::Static(_) => return None,
                Segment::Param(name) => out.push((name.clone(), s.to_string())),
            }
        }
        Some(out)
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The pattern with parameter names erased: what "same interface" compares.
    pub fn shape(&self) -> String {
        self.render(|_, _| ":")
    }

    /// The pattern with each parameter (by segment index and name) replaced.
    fn render<'a>(&'a self, param: impl Fn(usize, &'a str) -> &'a str) -> String {
        if self.segments.is_empty() {
            return "/".to_string();
        }
        let mut s = String::new();
        for (i, seg) in self.segments.iter().enumerate() {
            s.push('/');
            match seg {
                Segment::Static(t) => s.push_str(t),
                Segment::Param(name) => s.push_str(param(i, name)),
            }
        }
        s
    }

    /// Index of the parameter that follows the first `team` segment, if any
    /// (`/team/:teamUUID/…`). Its presence makes the interface team-level.
    /// The parameter's name does not matter, so the level of an interface is
    /// the same for every spelling of it (`/team/:t/x` ≡ `/team/:teamUUID/x`).
    pub fn team_param_index(&self) -> Option<usize> {
        self.segments
            .windows(2)
            .position(|w| matches!((&w[0], &w[1]), (Segment::Static(t), Segment::Param(_)) if t == "team"))
            .map(|i| i + 1)
    }

    pub fn is_team_level(&self) -> bool {
        self.team_param_index().is_some()
    }

    /// Does the pattern start with `/team/:teamUUID` (required for `external`)?
    pub fn starts_with_team(&self) -> bool {
        self.team_param_index() == Some(1)
    }

    /// A concrete path for examples and printed curl lines: the team
    /// parameter becomes `team`, every other parameter its own name
    /// (`/team/:t/tasks/:taskUUID` → `/team/T1/tasks/taskUUID`).
    pub fn example(&self, team: &str) -> String {
        let team_at = self.team_param_index();
        self.render(|i, name| if Some(i) == team_at { team } else { name })
    }

    /// Parameter names in order.
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(n) => Some(n.as_str()),
            Segment::Static(_) => None,
        })
    }
}

impl fmt::Display for UrlPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}
