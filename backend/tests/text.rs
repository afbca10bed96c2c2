//! Text sources over real sockets: `text_input` as the canvas, `draw_text` overlays, a draw tree
//! three deep mixing images and text, fonts from `--font-dir`, and the coded refusals.

mod support;

use std::path::Path;

use image::{ImageFormat, Rgba, RgbaImage};
use support::common::*;

const FONT: &str = "DejaVuSans.ttf";

fn bundled_font() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/fonts/DejaVuSans.ttf"))
        .unwrap()
}

fn png(width: u32, height: u32, colour: [u8; 4]) -> Vec<u8> {
    let img = RgbaImage::from_pixel(width, height, Rgba(colour));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png).unwrap();
    out.into_inner()
}

fn decode(response: &RawResponse) -> RgbaImage {
    assert_eq!(response.status, 200, "body: {}", response.text());
    image::load_from_memory_with_format(&response.body, ImageFormat::Png)
        .unwrap()
        .to_rgba8()
}

/// Pixels within 40 of `colour` on every channel (alpha included).
fn count_near(img: &RgbaImage, colour: [u8; 4]) -> usize {
    img.pixels()
        .filter(|p| p.0.iter().zip(colour).all(|(a, b)| a.abs_diff(b) <= 40))
        .count()
}

fn text_json(text: &str, url: &str, size: u32, color: &str) -> String {
    format!(r#"{{"text":"{text}","font":{{"url":"{url}"}},"size":{size},"color":"{color}"}}"#)
}

#[tokio::test(flavor = "multi_thread")]
async fn text_as_the_canvas_and_transformed() {
    let server = TestServer::start().await;
    let source = text_json("Hi there", FONT, 48, "#ff0000");
    let plain = multipart(&[
        field("text_input", &source),
        field("transforms", "[]"),
        field("output_format", "image/png"),
    ]);
    let response = post(&server, Transport::Unix, "/transform", &plain).await;
    assert_eq!(response.header("content-type"), Some("image/png"));
    let img = decode(&response);
    // 48 pt = 64 px per em: one DejaVu line is 75 px tall.
    assert_eq!(img.height(), 75);
    assert!(img.width() > 200, "{}", img.width());
    assert!(count_near(&img, [255, 0, 0, 255]) > 1000);
    assert_eq!(
        img.get_pixel(0, 0).0[3],
        0,
        "outside the glyphs is transparent"
    );

    // Transforms apply to text like to any image: rotate, then a fitted resize.
    let turned = multipart(&[
        field("text_input", &source),
        field(
            "transforms",
            r#"[{"imageIndex":0,"rotate":90},{"imageIndex":0,"height":100}]"#,
        ),
        field("output_format", "image/png"),
    ]);
    let turned = decode(&post(&server, Transport::Tcp, "/transform", &turned).await);
    assert_eq!(turned.height(), 100);
    let expected_width = (f64::from(img.height()) * 100.0 / f64::from(img.width())).round();
    assert!((f64::from(turned.width()) - expected_width).abs() <= 1.0);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn draw_text_on_an_image_at_its_position() {
    let server = TestServer::start().await;
    let body = multipart(&[
        file("image", &png(300, 120, [255, 255, 255, 255])),
        field("draw_text", &text_json("IIII", FONT, 40, "rgb(0,0,255)")),
        field(
            "transforms",
            r#"[{"drawImageIndex":1,"targetImageIndex":0,"top":10,"left":20}]"#,
        ),
        field("output_format", "image/png"),
    ]);
    let img = decode(&post(&server, Transport::Unix, "/transform", &body).await);
    assert_eq!(img.dimensions(), (300, 120), "the canvas keeps its size");
    let blue: Vec<(u32, u32)> = img
        .enumerate_pixels()
        .filter(|(_, _, p)| p.0[2] > 200 && p.0[0] < 60)
        .map(|(x, y, _)| (x, y))
        .collect();
    assert!(blue.len() > 200, "{} blue pixels", blue.len());
    // All the ink is inside the overlay's box, which starts at (20, 10).
    assert!(blue.iter().all(|&(x, y)| x >= 20 && y >= 10));
    assert!(blue.iter().all(|&(x, y)| x < 20 + 150 && y < 10 + 63));
    assert_eq!(img.get_pixel(299, 119).0, [255, 255, 255, 255]);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn draw_tree_three_deep_mixing_images_and_text() {
    // input(white 320x200)
    //   .draw(input(blue 160x100)
    //           .draw(text("GG", green)
    //                   .draw(text("█", red), {top: 0, left: 0}),
    //                 {bottom: 0, right: 0}),
    //         {top: 20, left: 30})
    // serialised the way Cloudflare's client walks it: parts 1 = blue, 2 = "GG", 3 = "█".
    let server = TestServer::start().await;
    let body = multipart(&[
        file("image", &png(320, 200, [255, 255, 255, 255])),
        file("draw_image", &png(160, 100, [0, 0, 255, 255])),
        field("draw_text", &text_json("GG", FONT, 36, "lime")),
        field("draw_text", &text_json("█", FONT, 12, "red")),
        field(
            "transforms",
            r#"[{"drawImageIndex":3,"targetImageIndex":2,"top":0,"left":0},
                {"drawImageIndex":2,"targetImageIndex":1,"bottom":0,"right":0},
                {"drawImageIndex":1,"targetImageIndex":0,"top":20,"left":30}]"#,
        ),
        field("output_format", "image/png"),
    ]);
    let img = decode(&post(&server, Transport::Tcp, "/transform", &body).await);
    assert_eq!(img.dimensions(), (320, 200));
    // The blue box sits at (30, 20)–(190, 120); white elsewhere.
    assert_eq!(img.get_pixel(31, 21).0, [0, 0, 255, 255]);
    assert_eq!(img.get_pixel(29, 21).0, [255, 255, 255, 255]);
    assert_eq!(img.get_pixel(200, 150).0, [255, 255, 255, 255]);
    let inside = |x: u32, y: u32| (30..190).contains(&x) && (20..120).contains(&y);
    let green: Vec<_> = img
        .enumerate_pixels()
        .filter(|(_, _, p)| p.0[1] > 200 && p.0[0] < 60 && p.0[2] < 60)
        .collect();
    let red: Vec<_> = img
        .enumerate_pixels()
        .filter(|(_, _, p)| p.0[0] > 200 && p.0[1] < 60 && p.0[2] < 60)
        .collect();
    assert!(green.len() > 100, "{} green", green.len());
    assert!(red.len() > 20, "{} red", red.len());
    assert!(green.iter().chain(&red).all(|(x, y, _)| inside(*x, *y)));
    // "GG" hugs the blue box's bottom-right corner; the block is at its top-left, so left of
    // and above the green ink's centre.
    let mean = |v: &[(u32, u32, &Rgba<u8>)]| {
        let n = v.len() as f64;
        (
            v.iter().map(|p| f64::from(p.0)).sum::<f64>() / n,
            v.iter().map(|p| f64::from(p.1)).sum::<f64>() / n,
        )
    };
    let (gx, gy) = mean(&green);
    let (rx, ry) = mean(&red);
    assert!(gx > 110.0 && gy > 70.0, "green centre ({gx}, {gy})");
    assert!(rx < gx && ry < gy, "red ({rx}, {ry}) vs green ({gx}, {gy})");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn fonts_from_the_font_directory() {
    let fonts = tempfile::tempdir().unwrap();
    std::fs::create_dir(fonts.path().join("brand")).unwrap();
    std::fs::write(fonts.path().join("brand/House.ttf"), bundled_font()).unwrap();
    let dir = fonts.path().to_path_buf();
    let server = TestServer::start_with(move |c| c.limits.font_dir = Some(dir), None).await;
    let body = |url: &str| {
        multipart(&[
            field("text_input", &text_json("Dir", url, 20, "black")),
            field("transforms", "[]"),
            field("output_format", "image/png"),
        ])
    };
    let from_dir = decode(
        &post(
            &server,
            Transport::Unix,
            "/transform",
            &body("brand/House.ttf"),
        )
        .await,
    );
    let bundled = decode(&post(&server, Transport::Unix, "/transform", &body(FONT)).await);
    // Same font file, same pixels.
    assert_eq!(from_dir, bundled);
    let escape = post(&server, Transport::Unix, "/transform", &body("../x.ttf")).await;
    assert_error(&escape, 400, 9401);
    let missing = post(&server, Transport::Unix, "/transform", &body("Nope.ttf")).await;
    assert_error(&missing, 400, 9401);
    assert!(
        missing.text().contains("no such font"),
        "{}",
        missing.text()
    );
    server.stop().await.unwrap();

    // Without --font-dir the name is unknown.
    let server = TestServer::start().await;
    let response = post(
        &server,
        Transport::Unix,
        "/transform",
        &body("brand/House.ttf"),
    )
    .await;
    assert_error(&response, 400, 9401);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn text_errors_are_coded() {
    let server = TestServer::start().await;
    let cases: [(String, u16, u16, &str); 5] = [
        (
            text_json("x", "https://example.com/font.ttf", 20, "red"),
            400,
            9401,
            "does not fetch fonts",
        ),
        (
            // "wOF2…": a WOFF2 header.
            text_json("x", "data:font/woff2;base64,d09GMgABAAA=", 20, "red"),
            415,
            9520,
            "WOFF",
        ),
        (
            text_json("x", "data:font/ttf;base64,PGh0bWw+PC9odG1sPg==", 20, "red"),
            400,
            9401,
            "not a TrueType or OpenType font",
        ),
        (text_json("x", FONT, 5000, "red"), 400, 9401, "size"),
        (text_json("x", FONT, 20, "not-a-colour"), 400, 9401, "color"),
    ];
    for (source, status, code, needle) in cases {
        let body = multipart(&[
            field("text_input", &source),
            field("transforms", "[]"),
            field("output_format", "image/png"),
        ]);
        let response = post(&server, Transport::Tcp, "/transform", &body).await;
        assert_error(&response, status, code);
        assert!(response.text().contains(needle), "{}", response.text());
    }
    server.stop().await.unwrap();
}
