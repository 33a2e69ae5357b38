use axactor::{Context, actor};

pub struct Counter;

#[actor]
impl Counter {
    #[msg]
    fn nap(&mut self, ms: u64, ctx: &mut Context) {
        let _ = (ms, ctx);
    }
}

fn main() {}
