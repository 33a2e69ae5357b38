use axactor::actor;

pub struct Counter;

#[actor]
impl Counter {
    #[msg]
    fn set(&mut self, __reply: i64) {
        let _ = __reply;
    }
}

fn main() {}
