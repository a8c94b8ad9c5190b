//! Our `Accept` negotiation against WebOb's own (`acceptable_offers`, the code Nodepool's
//! webapp runs), for headers valid, invalid and odd. Needs the Python venv that
//! `scripts/setup.sh` creates (Nodepool 11 with WebOb); fails without it.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a test failure

use std::process::Command;

use nodepool_web::server::acceptable_offers;
use serde_json::Value;

const HEADERS: &[&str] = &[
    "",
    "*/*",
    "text/html",
    "application/json",
    "application/json, text/plain",
    "application/json , text/plain",
    "application/json,text/plain;q=0.999",
    "application/json;q=1.000, text/html;q=1",
    "application/json;q=1.0001",
    "application/json;q=0.1234",
    "application/json;q=2",
    "application/json;Q=0.5, text/*;q=0.4",
    "APPLICATION/JSON",
    "text/plain;charset=utf-8",
    "text/plain;charset=\"utf-8\", application/json;q=0.1",
    "text/*;q=0.5, application/json",
    "text/html;q=0, */*;q=0.1",
    "application/*;q=0.9, text/plain;q=0.8",
    "*/json",
    " application/json",
    "application/json ",
    ",application/json",
    ", ,application/json",
    "application/json,,",
    "application/json;q=0.5;ext=\"a b\", text/html;q=0.4",
    "a/b;x=1;q=0.3;e;f=2",
    "application/json;q=0.5;ext=, text/html",
    "application/json;foo, text/html",
    "application/json;q=0",
    "image/png",
    "text/html;level=1;q=0.7, application/json;q=0.6",
    "json",
    "text/html\t;\tq=0.2,application/json",
    "application/json;q=0.",
    "text/plain;a=\"\\\"x\\\"\"",
];

const OFFERS: [&str; 3] = ["text/html", "text/plain", "application/json"];

#[test]
fn matches_webob() {
    let venv = std::env::var("NODEPOOL_TEST_VENV").unwrap_or("/var/tmp/nodepool-venv".into());
    let script = "import json, sys\n\
        from webob.acceptparse import create_accept_header\n\
        headers = json.load(sys.stdin)\n\
        offers = ['text/html', 'text/plain', 'application/json']\n\
        out = [[o for o, q in create_accept_header(h).acceptable_offers(offers)] for h in headers]\n\
        out.append([o for o, q in create_accept_header(None).acceptable_offers(offers)])\n\
        print(json.dumps(out))\n";
    let mut child = Command::new(format!("{venv}/bin/python"))
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the Python venv with WebOb (scripts/setup.sh)");
    serde_json::to_writer(child.stdin.take().unwrap(), HEADERS).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let want: Vec<Vec<String>> = serde_json::from_slice::<Value>(&output.stdout)
        .map(|v| serde_json::from_value(v).unwrap())
        .unwrap();
    let mut headers: Vec<Option<&str>> = HEADERS.iter().map(|h| Some(*h)).collect();
    headers.push(None);
    for (header, want) in headers.iter().zip(&want) {
        let got = acceptable_offers(header.map(str::as_bytes), &OFFERS);
        assert_eq!(&got, want, "Accept: {header:?}");
    }
}
