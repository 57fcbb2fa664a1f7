//! HAProxy without reloads (issue 5) against real HAProxy 2.6 and real Pebble: hot swap
//! through the runtime API with open connections kept, a certificate added to a running
//! proxy, several proxies with one down, no transaction left open after a failed commit,
//! stateless HTTP-01 answered by HAProxy itself, webroot, and a TCP (seed 004) frontend.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use common::fixtures::{request, serial_hex};
use common::process::{ProcessGuard, free_port};
use common::proxy::Proxy;
use common::{Lab, LabOptions, tls};

fn bundle_serial(path: &Path) -> String {
    let blocks = pem::parse_many(std::fs::read(path).unwrap()).unwrap();
    serial_hex(blocks[0].contents())
}

fn served_serial(addr: std::net::SocketAddr, sni: &str) -> String {
    let stream = tls::handshake(addr, sni, tls::config_accepting_anything()).unwrap();
    serial_hex(&tls::peer_chain(&stream)[0])
}

#[test]
fn renew_swaps_through_the_runtime_api_without_reload_and_keeps_open_connections() {
    let lab = Lab::start();
    let socket = lab.admin_socket().display().to_string();
    request(&lab, &["a.mon-app.test", "--haproxy-socket", &socket]).assert_success();
    let bundle = lab.ssl_dir().join("a.mon-app.test.pem");
    let first = bundle_serial(&bundle);
    assert_eq!(
        served_serial(lab.https_addr(), "a.mon-app.test"),
        first,
        "added with no reload"
    );
    let worker = lab.haproxy_worker_pid();

    // a connection opened before the swap
    let mut open = tls::handshake(
        lab.https_addr(),
        "a.mon-app.test",
        tls::config_accepting_anything(),
    )
    .unwrap();
    let out = lab.run(&["renew", "a.mon-app.test", "--force"]);
    out.assert_success();
    assert!(out.stderr.contains("no reload"), "{}", out.stderr);
    let second = bundle_serial(&bundle);
    assert_ne!(first, second);

    // the old connection still works, a new handshake sees the new serial, same worker
    open.write_all(b"GET / HTTP/1.1\r\nHost: a.mon-app.test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    let _ = open.read_to_string(&mut reply);
    assert!(
        reply.starts_with("HTTP/1.1 200") && reply.contains("certctl lab"),
        "{reply}"
    );
    assert_eq!(served_serial(lab.https_addr(), "a.mon-app.test"), second);
    assert_eq!(lab.haproxy_worker_pid(), worker, "no reload happened");
    let settings =
        std::fs::read_to_string(lab.state_dir().join("certs/a.mon-app.test/settings.json"))
            .unwrap();
    assert!(
        settings.contains(&socket),
        "the socket is stored for renew: {settings}"
    );
}

#[test]
fn several_proxies_are_updated_and_one_down_does_not_stop_the_other() {
    let lab = Lab::start();
    let mut second = Proxy::start(&lab, "second", "", "");
    let first_socket = lab.admin_socket().display().to_string();
    let second_socket = second.admin_socket.display().to_string();
    let out = request(
        &lab,
        &[
            "b.mon-app.test",
            "--haproxy-socket",
            &first_socket,
            "--haproxy-socket",
            &second_socket,
        ],
    );
    out.assert_success();
    let bundle = lab.ssl_dir().join("b.mon-app.test.pem");
    let serial = bundle_serial(&bundle);
    assert_eq!(served_serial(lab.https_addr(), "b.mon-app.test"), serial);
    assert_eq!(served_serial(second.https, "b.mon-app.test"), serial);

    second.stop();
    let out = lab.run(&["renew", "--force"]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains(&second_socket),
        "names the proxy that failed: {}",
        out.stderr
    );
    let renewed = bundle_serial(&bundle);
    assert_ne!(
        renewed, serial,
        "the bundle on disk is new, for the next reload"
    );
    assert_eq!(
        served_serial(lab.https_addr(), "b.mon-app.test"),
        renewed,
        "the live proxy was updated"
    );
}

#[test]
// The library takes the admin socket's timeout as an argument (the binary resolves it from
// CERTCTL_HAPROXY_TIMEOUT once): nothing of the test's environment reaches this call.
fn a_failed_commit_is_aborted_and_leaves_no_transaction() {
    let lab = Lab::start();
    request(
        &lab,
        &[
            "c.mon-app.test",
            "--haproxy-socket",
            &lab.admin_socket().display().to_string(),
        ],
    )
    .assert_success();
    let path = lab.ssl_dir().join("c.mon-app.test.pem");
    let text = std::fs::read_to_string(&path).unwrap();
    let certs: String = text
        .split_inclusive('\n')
        .take_while(|l| !l.contains("PRIVATE KEY"))
        .collect();
    let other_key = rcgen::KeyPair::generate().unwrap().serialize_pem();
    let haproxy = certctl::deploy::haproxy::Haproxy::new(
        certctl::deploy::haproxy::Socket::Unix(lab.admin_socket()),
        std::time::Duration::from_secs(10),
    );
    let err = haproxy
        .deploy(&path, &format!("{certs}{other_key}"), "00")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("commit ssl cert") && err.contains("inconsistencies"),
        "{err}"
    );
    let listing = haproxy.command("show ssl cert").unwrap();
    assert!(
        !listing.lines().any(|l| l.starts_with('*')),
        "no open transaction: {listing}"
    );
    assert_eq!(
        served_serial(lab.https_addr(), "c.mon-app.test"),
        bundle_serial(&path),
        "still the good one"
    );
}

#[test]
fn stateless_http01_is_answered_by_haproxy_from_the_thumbprint() {
    // no lab HAProxy: Pebble validates on http_addr, where this proxy answers by itself
    let lab = Lab::start_with(LabOptions {
        haproxy: false,
        ..Default::default()
    });
    let out = lab.run(&["account", "thumbprint", "--agree-tos", "-q"]);
    out.assert_success();
    let thumbprint = out.stdout.trim().to_owned();
    assert_eq!(thumbprint.len(), 43, "{thumbprint}");
    let full = lab.run(&["account", "thumbprint"]);
    full.assert_success();
    assert!(
        full.stdout
            .contains(&format!("setenv ACCOUNT_THUMBPRINT '{thumbprint}'")),
        "{}",
        full.stdout
    );

    let _proxy = Proxy::start(
        &lab,
        "stateless",
        &format!("    setenv ACCOUNT_THUMBPRINT '{thumbprint}'"),
        &format!(
            "frontend http\n    bind {}\n    http-request return status 200 content-type text/plain lf-string \
             \"%[path,field(-1,/)].${{ACCOUNT_THUMBPRINT}}\\n\" if {{ path_beg '/.well-known/acme-challenge/' }}\n",
            lab.http_addr()
        ),
    );
    // certctl binds nothing: the address is HAProxy's, and the order still succeeds
    let out = lab.run(&[
        "request",
        "s.mon-app.test",
        "--challenge",
        "stateless",
        "--http-addr",
        &lab.http_addr(),
    ]);
    out.assert_success();
    assert!(lab.ssl_dir().join("s.mon-app.test.pem").is_file());
}

#[test]
fn webroot_writes_tokens_for_a_real_static_file_server_and_removes_them() {
    let lab = Lab::start_with(LabOptions {
        haproxy: false,
        ..Default::default()
    });
    let webroot = lab.root().join("www");
    std::fs::create_dir_all(&webroot).unwrap();
    std::fs::write(webroot.join("index.html"), "site\n").unwrap();
    let port = lab.http_addr().rsplit(':').next().unwrap().to_owned();
    let mut server = Command::new("python3");
    server
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port,
            "--directory",
        ])
        .arg(&webroot);
    let mut guard = ProcessGuard::spawn("http.server", server, lab.root().join("http-server.log"));
    let addr = lab.http_addr().parse().unwrap();
    guard.wait_until("http.server listens", common::STARTUP_TIMEOUT, || {
        common::process::accepts(addr)
    });

    let webroot_arg = webroot.display().to_string();
    let out = lab.run(&[
        "request",
        "w.mon-app.test",
        "--agree-tos",
        "--challenge",
        "webroot",
        "--webroot",
        &webroot_arg,
    ]);
    out.assert_success();
    assert!(lab.ssl_dir().join("w.mon-app.test.pem").is_file());
    let left: Vec<_> = std::fs::read_dir(webroot.join(".well-known/acme-challenge"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "token files removed");
    assert_eq!(
        std::fs::read_to_string(webroot.join("index.html")).unwrap(),
        "site\n",
        "nothing else touched"
    );
    let log = std::fs::read_to_string(lab.root().join("http-server.log")).unwrap();
    assert!(
        log.contains("/.well-known/acme-challenge/"),
        "Pebble fetched the token from the server: {log}"
    );
}

#[test]
fn a_tcp_frontend_serves_the_same_bundle_in_front_of_a_plain_tcp_service() {
    let lab = Lab::start();
    request(&lab, &["dot.mon-app.test"]).assert_success();
    let bundle = lab.ssl_dir().join("dot.mon-app.test.pem");

    // a line echo service, as Unbound or Redis would sit behind `mode tcp`
    let echo = TcpListener::bind("127.0.0.1:0").unwrap();
    let echo_addr = echo.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in echo.incoming().flatten() {
            std::thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if writeln!(writer, "{line}").is_err() {
                        break;
                    }
                }
            });
        }
    });
    let tcp_port = free_port();
    let _proxy = Proxy::start(
        &lab,
        "tcp",
        "",
        &format!(
            "frontend dot\n    mode tcp\n    bind 127.0.0.1:{tcp_port} ssl crt {}\n    default_backend echo\n\n\
             backend echo\n    mode tcp\n    server echo {echo_addr}\n",
            bundle.display()
        ),
    );
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], tcp_port));
    let mut stream =
        tls::handshake(addr, "dot.mon-app.test", tls::config_accepting_anything()).unwrap();
    assert_eq!(
        serial_hex(&tls::peer_chain(&stream)[0]),
        bundle_serial(&bundle)
    );
    stream.write_all(b"ping\n").unwrap();
    stream.flush().unwrap();
    let mut reply = [0u8; 5];
    stream.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"ping\n");
}
