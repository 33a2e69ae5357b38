use axactor::{Context, actor};

pub struct Counter;

#[actor]
impl Counter {
    async fn on_stop(&mut self, ctx: &mut Context) {
        let _ = ctx;
    }
}

fn main() {}
