<?php

declare(strict_types=1);

namespace App;

use PDO;

/**
 * The hub: the events (id counter and history) and the open streams, shared by every PHP
 * process through one SQLite database in WAL mode (readers never wait for the writer). An
 * event's row id is its SSE id.
 */
final class Hub
{
    /** Events kept at least: how far a stream may fall behind before it is dropped. */
    private const MIN_KEEP = 256;

    private PDO $db;
    private readonly int $keep;

    public function __construct(string $path, int $historySize)
    {
        $this->keep = max($historySize, self::MIN_KEEP);
        $this->db = new PDO("sqlite:$path", options: [
            PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
            PDO::ATTR_DEFAULT_FETCH_MODE => PDO::FETCH_ASSOC,
        ]);
        $this->db->exec('PRAGMA busy_timeout = 5000');
        $this->db->exec('PRAGMA journal_mode = WAL');
        $this->db->exec('PRAGMA synchronous = NORMAL');
        // AUTOINCREMENT: ids never go back, even after old events are deleted.
        $this->db->exec('CREATE TABLE IF NOT EXISTS events (
            id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, data TEXT NOT NULL)');
        $this->db->exec('CREATE TABLE IF NOT EXISTS streams (pid INTEGER PRIMARY KEY)');
    }

    /** Stores an event, forgets the ones past the last $keep, and returns its id. */
    public function publish(string $event, string $data): int
    {
        return $this->write(function () use ($event, $data): int {
            $this->db->prepare('INSERT INTO events (name, data) VALUES (?, ?)')->execute([$event, $data]);
            $id = (int) $this->db->lastInsertId();
            $this->db->prepare('DELETE FROM events WHERE id <= ?')->execute([$id - $this->keep]);
            return $id;
        });
    }

    /**
     * Counts this process's stream in and returns the id it reads on from: the kept events
     * after $lastEventId (at most $history of them) are its replay, later ones are live.
     */
    public function subscribe(?string $lastEventId, int $history): int
    {
        return $this->write(function () use ($lastEventId, $history): int {
            $this->db->prepare('INSERT OR REPLACE INTO streams (pid) VALUES (?)')->execute([getmypid()]);
            $last = (int) $this->db->query('SELECT COALESCE(MAX(id), 0) FROM events')->fetchColumn();
            if ($lastEventId !== null) {
                // (a float: the id may have more digits than an int holds)
                $last = (int) min($last, max((float) $lastEventId, $last - $history));
            }
            return $last;
        });
    }

    public function unsubscribe(): void
    {
        $this->db->prepare('DELETE FROM streams WHERE pid = ?')->execute([getmypid()]);
    }

    public function count(): int
    {
        return (int) $this->db->query('SELECT COUNT(*) FROM streams')->fetchColumn();
    }

    /** @return list<array{id: int, name: string, data: string}> the events after $id, oldest first */
    public function after(int $id, int $limit): array
    {
        $query = $this->db->prepare('SELECT id, name, data FROM events WHERE id > ? ORDER BY id LIMIT ?');
        $query->execute([$id, $limit]);
        return $query->fetchAll();
    }

    /** Runs $work holding the write lock (other writers wait up to busy_timeout). */
    private function write(callable $work): mixed
    {
        $this->db->exec('BEGIN IMMEDIATE');
        try {
            $result = $work();
            $this->db->exec('COMMIT');
            return $result;
        } catch (\Throwable $e) {
            $this->db->exec('ROLLBACK');
            throw $e;
        }
    }
}
