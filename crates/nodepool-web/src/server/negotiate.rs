//! Content negotiation as Nodepool's webapp does it with WebOb 1.8
//! (`Accept.acceptable_offers`, RFC 7231 section 5.3.2 rules).
//!
//! An `Accept` header that does not follow the grammar counts as absent (every offer is
//! acceptable); a valid header that matches no offer leaves nothing acceptable, which
//! Nodepool turns into a 500 (spec 8.3 item 24).

/// One media range of a valid `Accept` header, lowercased.
#[derive(Debug, Clone, PartialEq)]
struct MediaRange {
    media_type: String,
    subtype: String,
    /// Whether the range carries media type parameters (`text/plain;charset=utf-8`): such a
    /// range never matches a parameterless offer exactly.
    has_params: bool,
    quality: f64,
}

/// The offers that the header accepts, best first (highest quality, ties in offer order),
/// for offers without parameters. `None` (no header) accepts every offer.
pub fn acceptable_offers<'a>(header: Option<&[u8]>, offers: &[&'a str]) -> Vec<&'a str> {
    let Some(ranges) = header.and_then(parse_accept) else {
        return offers.to_vec();
    };
    let mut accepted: Vec<(f64, usize, &'a str)> = Vec::new();
    for (index, offer) in offers.iter().enumerate() {
        let (offer_type, offer_subtype) = offer.split_once('/').unwrap_or((offer, ""));
        // (quality, specificity) of the most specific range matching this offer; among
        // equally specific ranges the first wins.
        let mut best: Option<(f64, u8)> = None;
        for range in &ranges {
            let specificity = if range.media_type == offer_type && range.subtype == offer_subtype {
                if range.has_params {
                    continue;
                }
                3
            } else if range.subtype == "*" && range.media_type == offer_type {
                2
            } else if range.media_type == "*" && range.subtype == "*" {
                1
            } else {
                continue;
            };
            if best.is_some_and(|(_, seen)| specificity <= seen) {
                continue;
            }
            best = Some((range.quality, specificity));
        }
        if let Some((quality, _)) = best
            && quality != 0.0
        {
            accepted.push((quality, index, offer));
        }
    }
    accepted.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    accepted.into_iter().map(|(_, _, offer)| offer).collect()
}

/// A byte cursor over the header; every `try_*` restores the position when it fails, which
/// gives the same answers as WebOb's backtracking regular expressions for this grammar.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
    }

    fn token(&mut self) -> Option<&'a [u8]> {
        let start = self.at;
        while self.peek().is_some_and(is_tchar) {
            self.at += 1;
        }
        (self.at > start).then(|| &self.bytes[start..self.at])
    }

    fn quoted_string(&mut self) -> bool {
        let start = self.at;
        if !self.eat(b'"') {
            return false;
        }
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.at += 1;
                    return true;
                }
                Some(b'\\') => {
                    self.at += 1;
                    match self.peek() {
                        Some(b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff) => self.at += 1,
                        _ => break,
                    }
                }
                Some(b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff) => self.at += 1,
                _ => break,
            }
        }
        self.at = start;
        false
    }

    fn value(&mut self) -> bool {
        self.token().is_some() || self.quoted_string()
    }

    /// `OWS ; OWS`.
    fn semicolon(&mut self) -> bool {
        let start = self.at;
        self.ows();
        if self.eat(b';') {
            self.ows();
            true
        } else {
            self.at = start;
            false
        }
    }

    /// A media type parameter: `OWS ; OWS name=value`, the name not `q`.
    fn try_param(&mut self) -> bool {
        let start = self.at;
        if self.semicolon()
            && !matches!(
                self.bytes.get(self.at..self.at + 2),
                Some([b'q' | b'Q', b'='])
            )
            && self.token().is_some()
            && self.eat(b'=')
            && self.value()
        {
            return true;
        }
        self.at = start;
        false
    }

    /// `OWS ; OWS q=qvalue`, returning the quality.
    fn try_weight(&mut self) -> Option<f64> {
        let start = self.at;
        if self.semicolon() && matches!(self.peek(), Some(b'q' | b'Q')) {
            self.at += 1;
            if self.eat(b'=') {
                let digits_start = self.at;
                let ok = match self.peek() {
                    Some(b'0') => {
                        self.at += 1;
                        if self.eat(b'.') {
                            self.repeat_up_to_3(|b| b.is_ascii_digit());
                        }
                        true
                    }
                    Some(b'1') => {
                        self.at += 1;
                        if self.eat(b'.') {
                            self.repeat_up_to_3(|b| b == b'0');
                        }
                        true
                    }
                    _ => false,
                };
                if ok {
                    let text = String::from_utf8_lossy(&self.bytes[digits_start..self.at]);
                    if let Ok(quality) = text.parse::<f64>() {
                        return Some(quality);
                    }
                }
            }
        }
        self.at = start;
        None
    }

    fn repeat_up_to_3(&mut self, accept: impl Fn(u8) -> bool) {
        for _ in 0..3 {
            if self.peek().is_some_and(&accept) {
                self.at += 1;
            } else {
                break;
            }
        }
    }

    /// An accept extension after the weight: `OWS ; OWS token[=value]`.
    fn try_extension(&mut self) -> bool {
        let start = self.at;
        if self.semicolon() && self.token().is_some() {
            let before_value = self.at;
            if !(self.eat(b'=') && self.value()) {
                self.at = before_value;
            }
            return true;
        }
        self.at = start;
        false
    }

    /// `type/subtype *param [weight *extension]`.
    fn element(&mut self) -> Option<MediaRange> {
        let media_type = self.token()?;
        if !self.eat(b'/') {
            return None;
        }
        let subtype = self.token()?;
        let mut has_params = false;
        while self.try_param() {
            has_params = true;
        }
        let mut quality = 1.0;
        if let Some(weight) = self.try_weight() {
            quality = weight;
            while self.try_extension() {}
        }
        Some(MediaRange {
            media_type: String::from_utf8_lossy(media_type).to_ascii_lowercase(),
            subtype: String::from_utf8_lossy(subtype).to_ascii_lowercase(),
            has_params,
            quality,
        })
    }
}

/// The media ranges of a valid header (`#( media-range [ accept-params ] )`, empty
/// elements allowed), or `None` for a header WebOb would call invalid.
fn parse_accept(header: &[u8]) -> Option<Vec<MediaRange>> {
    let mut cursor = Cursor {
        bytes: header,
        at: 0,
    };
    let mut ranges = Vec::new();
    if header.is_empty() {
        return Some(ranges);
    }
    if !cursor.eat(b',') {
        ranges.push(cursor.element()?);
    }
    while cursor.at < header.len() {
        cursor.ows();
        if !cursor.eat(b',') {
            return None;
        }
        let before = cursor.at;
        cursor.ows();
        match cursor.element() {
            Some(range) => ranges.push(range),
            None => cursor.at = before,
        }
    }
    Some(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFERS: [&str; 3] = ["text/html", "text/plain", "application/json"];

    fn best(header: Option<&str>) -> Option<&'static str> {
        acceptable_offers(header.map(str::as_bytes), &OFFERS)
            .first()
            .copied()
    }

    #[test]
    fn nodepool_cases() {
        assert_eq!(best(None), Some("text/html"));
        assert_eq!(best(Some("*/*")), Some("text/html"));
        assert_eq!(best(Some("application/json")), Some("application/json"));
        assert_eq!(
            best(Some("application/json, text/plain")),
            Some("text/plain")
        );
        assert_eq!(
            best(Some("application/json, text/plain;q=0.9")),
            Some("application/json")
        );
        assert_eq!(best(Some("image/png")), None);
        assert_eq!(best(Some("")), None);
        assert_eq!(best(Some("text/plain;charset=utf-8")), None);
        assert_eq!(
            best(Some("text/*;q=0.5, application/json")),
            Some("application/json")
        );
        assert_eq!(best(Some("application/*")), Some("application/json"));
        assert_eq!(best(Some("APPLICATION/JSON")), Some("application/json"));
        assert_eq!(best(Some("text/html;q=0, */*;q=0.1")), Some("text/plain"));
        // Invalid headers accept everything.
        assert_eq!(best(Some("application/json;q=2")), Some("text/html"));
        assert_eq!(best(Some(" application/json")), Some("text/html"));
        assert_eq!(best(Some("json")), Some("text/html"));
        // Empty list elements are allowed after the first element, not before it.
        assert_eq!(best(Some("application/json,,")), Some("application/json"));
        assert_eq!(best(Some(",application/json")), Some("text/html"));
        assert_eq!(
            best(Some("application/json;q=0.5;ext=\"a b\", text/html;q=0.4")),
            Some("application/json")
        );
    }
}
