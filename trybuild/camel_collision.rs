use axactor::actor;

pub struct Counter;

#[actor]
impl Counter {
    #[msg]
    fn get_x(&mut self) -> i32 {
        1
    }

    #[msg]
    fn get__x(&mut self) -> i32 {
        2
    }
}

fn main() {}
