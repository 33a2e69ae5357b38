use axactor::{Context, actor};

pub struct Counter;

#[actor]
impl Counter {
    #[msg]
    fn whoami(&mut self, ctx: &Context) -> u64 {
        ctx.pid().as_u64()
    }
}

fn main() {}
