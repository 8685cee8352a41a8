# corpus: healthy
# story: a FastAPI arcade leaderboard on uvicorn keeps scores in Redis sorted sets through one redis.asyncio client per worker, awaiting every call
# needs: fastapi, uvicorn, redis
# run: uvicorn arcade_leaderboard_fastapi:app --workers 2
import contextlib
import json
import os
import random
import sys
import threading
import time
import urllib.error
import urllib.request

import redis.asyncio as aioredis
from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel, Field

REDIS_URL = f"redis://127.0.0.1:{os.environ.get('PYDX_REDIS_PORT', '6379')}/0"


class Score(BaseModel):
    player: str = Field(min_length=1, max_length=32)
    points: int = Field(ge=0)


class Standing(BaseModel):
    player: str
    points: int
    rank: int


@contextlib.asynccontextmanager
async def lifespan(app):
    app.state.redis = aioredis.from_url(REDIS_URL, decode_responses=True, max_connections=32)
    yield
    await app.state.redis.aclose()


app = FastAPI(lifespan=lifespan)


@app.post("/boards/{board}/scores", status_code=201)
async def submit_score(board: str, score: Score, request: Request) -> Standing:
    store = request.app.state.redis
    async with store.pipeline(transaction=False) as pipe:
        pipe.zadd(f"board:{board}", {score.player: score.points}, gt=True)
        pipe.zscore(f"board:{board}", score.player)
        pipe.zrevrank(f"board:{board}", score.player)
        _, best, rank = await pipe.execute()
    return Standing(player=score.player, points=int(best), rank=rank + 1)


@app.get("/boards/{board}/top")
async def top_players(board: str, request: Request, limit: int = 10) -> list[Standing]:
    rows = await request.app.state.redis.zrevrange(f"board:{board}", 0, min(limit, 50) - 1, withscores=True)
    return [Standing(player=p, points=int(s), rank=i + 1) for i, (p, s) in enumerate(rows)]


@app.get("/boards/{board}/players/{player}")
async def player_standing(board: str, player: str, request: Request) -> Standing:
    async with request.app.state.redis.pipeline(transaction=False) as pipe:
        pipe.zscore(f"board:{board}", player)
        pipe.zrevrank(f"board:{board}", player)
        points, rank = await pipe.execute()
    if points is None:
        raise HTTPException(404, "no score yet")
    return Standing(player=player, points=int(points), rank=rank + 1)


def generate_load(base_url, seconds, clients=3):
    deadline = time.monotonic() + seconds
    boards = ["pinball", "galaxy", "racer"]

    def cabinet(seed):
        rng = random.Random(seed)
        while time.monotonic() < deadline:
            board, player = rng.choice(boards), f"p{rng.randrange(3000)}"
            if rng.random() < 0.5:
                body = json.dumps({"player": player, "points": rng.randrange(10**6)}).encode()
                req = urllib.request.Request(f"{base_url}/boards/{board}/scores", data=body,
                                             headers={"Content-Type": "application/json"})
            elif rng.random() < 0.5:
                req = urllib.request.Request(f"{base_url}/boards/{board}/top")
            else:
                req = urllib.request.Request(f"{base_url}/boards/{board}/players/{player}")
            try:
                with urllib.request.urlopen(req) as reply:
                    reply.read()
            except urllib.error.HTTPError as err:
                if err.code != 404:
                    raise

    cabinets = [threading.Thread(target=cabinet, args=(n,)) for n in range(clients)]
    for thread in cabinets:
        thread.start()
    for thread in cabinets:
        thread.join()


if __name__ == "__main__" and sys.argv[1:2] == ["load"]:
    generate_load(sys.argv[2], float(sys.argv[3]))
