//! The options validator: `parse_steps` and `OutputOptions::from_fields` on arbitrary text.
//! Input: one byte for the image count (1–4), then up to five NUL-separated fields: transforms
//! JSON, output_format, output_quality, background, anim.
#![no_main]

use imgbind_wire::{parse_steps, OutputFields, OutputOptions};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let images = 1 + usize::from(count % 4);
    let text = String::from_utf8_lossy(rest);
    let mut fields = text.split('\0');
    let transforms = fields.next().unwrap_or_default();
    let [format, quality, background, anim] = std::array::from_fn(|_| fields.next());
    if let Ok(steps) = parse_steps(transforms, images) {
        // Every index a valid op list names exists.
        for step in &steps {
            match step {
                imgbind_wire::Step::Transform(t) => assert!(t.image_index < images),
                imgbind_wire::Step::Draw(d) => {
                    assert!(d.draw_image_index < images && d.target_image_index < images)
                }
            }
        }
    }
    let _ = OutputOptions::from_fields(&OutputFields {
        format: format.map(String::from),
        quality: quality.map(String::from),
        background: background.map(String::from),
        anim: anim.map(String::from),
    });
});
