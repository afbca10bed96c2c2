//! The transformer tree and its flattening into form parts and steps, in Cloudflare's order.
//!
//! A transformer is a source plus the steps called on it: transforms, and draws of other
//! transformers. Flattening walks the tree depth first: a drawn child's source becomes the next
//! `draw_image`/`draw_text` part (image index 1, 2, … in that order; the canvas is 0), its own steps
//! are emitted next, then the draw onto its target. This is the walk in workerd's
//! `ImageTransformerImpl.#serializeTransforms`.
//!
//! `S` is an input body (a stream handle, bytes, …) and `O` the options of a step (a JSON object
//! for Rust callers, a JS object in the wasm bindings).

/// What an image is made from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source<S> {
    /// Encoded image bytes, streamed.
    Image(S),
    /// Text to rasterise: the JSON `{text, font, size?, color?}` sent as `text_input`/`draw_text`.
    Text(String),
}

/// A transformer tree: a source and the steps called on it, in call order.
#[derive(Debug, Clone, PartialEq)]
pub struct Tree<S, O> {
    source: Source<S>,
    steps: Vec<Pending<S, O>>,
}

/// A step as called, before flattening.
#[derive(Debug, Clone, PartialEq)]
enum Pending<S, O> {
    Transform(O),
    Draw(Tree<S, O>, O),
}

/// One element of the `transforms` array.
#[derive(Debug, Clone, PartialEq)]
pub enum Op<O> {
    /// `{imageIndex, ...options}`.
    Transform {
        /// The image the transform applies to.
        image_index: usize,
        /// The transform's own fields.
        options: O,
    },
    /// `{drawImageIndex, targetImageIndex, ...options}`.
    Draw {
        /// The image drawn.
        draw_image_index: usize,
        /// The image drawn onto.
        target_image_index: usize,
        /// The draw options.
        options: O,
    },
}

/// A flattened transformer: the canvas, the draw sources in image-index order, and the steps.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan<S, O> {
    /// Image 0.
    pub canvas: Source<S>,
    /// Images 1, 2, …
    pub draws: Vec<Source<S>>,
    /// The `transforms` array.
    pub ops: Vec<Op<O>>,
}

impl<S, O> Tree<S, O> {
    /// A transformer with no steps yet.
    pub fn new(source: Source<S>) -> Self {
        Tree {
            source,
            steps: Vec::new(),
        }
    }

    /// Adds a transform of this image.
    pub fn transform(mut self, options: O) -> Self {
        self.push_transform(options);
        self
    }

    /// Adds a draw of `child` onto this image.
    pub fn draw(mut self, child: Tree<S, O>, options: O) -> Self {
        self.push_draw(child, options);
        self
    }

    /// [`transform`](Self::transform) in place.
    pub fn push_transform(&mut self, options: O) {
        self.steps.push(Pending::Transform(options));
    }

    /// [`draw`](Self::draw) in place.
    pub fn push_draw(&mut self, child: Tree<S, O>, options: O) {
        self.steps.push(Pending::Draw(child, options));
    }

    /// Flattens the tree depth first, as Cloudflare's client does.
    pub fn plan(self) -> Plan<S, O> {
        let mut plan = Plan {
            canvas: self.source,
            draws: Vec::new(),
            ops: Vec::new(),
        };
        walk(&mut plan, 0, self.steps);
        plan
    }
}

fn walk<S, O>(plan: &mut Plan<S, O>, target: usize, steps: Vec<Pending<S, O>>) {
    for step in steps {
        match step {
            Pending::Transform(options) => plan.ops.push(Op::Transform {
                image_index: target,
                options,
            }),
            Pending::Draw(child, options) => {
                plan.draws.push(child.source);
                let index = plan.draws.len();
                walk(plan, index, child.steps);
                plan.ops.push(Op::Draw {
                    draw_image_index: index,
                    target_image_index: target,
                    options,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use imgbind_wire::OutputFields;

    use crate::serialize::{frame, ops_json, BodyPiece, PartBody};

    fn input(name: &str) -> Tree<String, Value> {
        Tree::new(Source::Image(name.to_string()))
    }

    #[test]
    fn nested_draw_matches_cloudflares_test() {
        // workerd's test_images_nested_draw:
        // input(png).transform({rotate:90})
        //   .draw(input(png1).transform({rotate:180}))
        //   .draw(input(png2).draw(png3).transform({rotate:270}))
        //   .draw(png4)
        let plan = input("png")
            .transform(json!({"rotate": 90}))
            .draw(input("png1").transform(json!({"rotate": 180})), json!({}))
            .draw(
                input("png2")
                    .draw(input("png3"), json!({}))
                    .transform(json!({"rotate": 270})),
                json!({}),
            )
            .draw(input("png4"), json!({}))
            .plan();
        assert_eq!(plan.canvas, Source::Image("png".into()));
        assert_eq!(
            plan.draws,
            ["png1", "png2", "png3", "png4"].map(|s| Source::Image(s.to_string()))
        );
        assert_eq!(
            ops_json(&plan.ops).unwrap(),
            concat!(
                r#"[{"imageIndex":0,"rotate":90},{"imageIndex":1,"rotate":180},"#,
                r#"{"drawImageIndex":1,"targetImageIndex":0},"#,
                r#"{"drawImageIndex":3,"targetImageIndex":2},{"imageIndex":2,"rotate":270},"#,
                r#"{"drawImageIndex":2,"targetImageIndex":0},{"drawImageIndex":4,"targetImageIndex":0}]"#
            )
        );
    }

    #[test]
    fn depth_three_tree_with_text_and_options() {
        // canvas(text) <- a <- b <- c, with a sibling d after a; children's steps come before
        // their draw, and indices follow the order the sources are met.
        let c = input("c").transform(json!({"width": 3}));
        let b = input("b")
            .draw(c, json!({"top": 1}))
            .transform(json!({"blur": 2}));
        let a = Tree::new(Source::Text(r#"{"text":"a"}"#.into())).draw(b, json!({"opacity": 0.5}));
        let plan = Tree::new(Source::Text(r#"{"text":"t"}"#.into()))
            .draw(a, json!({"left": 4}))
            .draw(input("d"), Value::Null)
            .transform(json!({"rotate": 90}))
            .plan();
        assert_eq!(
            ops_json(&plan.ops).unwrap(),
            concat!(
                r#"[{"imageIndex":3,"width":3},"#,
                r#"{"drawImageIndex":3,"targetImageIndex":2,"top":1},"#,
                r#"{"imageIndex":2,"blur":2},"#,
                r#"{"drawImageIndex":2,"targetImageIndex":1,"opacity":0.5},"#,
                r#"{"drawImageIndex":1,"targetImageIndex":0,"left":4},"#,
                r#"{"drawImageIndex":4,"targetImageIndex":0},"#,
                r#"{"imageIndex":0,"rotate":90}]"#
            )
        );
        let ops_text = ops_json(&plan.ops).unwrap();
        let parts = plan.into_parts(
            ops_text.clone(),
            OutputFields {
                format: Some("image/png".into()),
                ..OutputFields::default()
            },
        );
        let names: Vec<_> = parts.iter().map(|p| p.name).collect();
        assert_eq!(
            names,
            [
                "text_input",
                "draw_text",
                "draw_image",
                "draw_image",
                "draw_image",
                "transforms",
                "output_format"
            ]
        );
        assert_eq!(parts[1].body, PartBody::Text(r#"{"text":"a"}"#.into()));
        // The ops agree with the backend's own parser and tree checks.
        imgbind_wire::parse_steps(&ops_text, 5).unwrap();
        assert_eq!(parts[5].body, PartBody::Text(ops_text));
        let streams: Vec<_> = frame("b", parts)
            .into_iter()
            .filter_map(|s| match s {
                BodyPiece::Stream(s) => Some(s),
                BodyPiece::Bytes(_) => None,
            })
            .collect();
        assert_eq!(streams, ["b", "c", "d"]);
    }

    #[test]
    fn flattened_steps_pass_the_wire_checks() {
        let plan = input("x")
            .draw(
                input("y").draw(input("z"), json!({"repeat": true})),
                json!({"bottom": 2, "right": 2}),
            )
            .transform(json!({"width": 10, "fit": "cover"}))
            .plan();
        let text = ops_json(&plan.ops).unwrap();
        let steps = imgbind_wire::parse_steps(&text, 1 + plan.draws.len()).unwrap();
        assert_eq!(steps.len(), 3);
    }
}
