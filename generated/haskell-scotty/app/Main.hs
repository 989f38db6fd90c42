{-# LANGUAGE MultiWayIf #-}
{-# LANGUAGE OverloadedStrings #-}

-- sse-server: a Server-Sent Events server on Scotty and Warp.
module Main (main) where

import Control.Applicative ((<|>))
import Control.Concurrent (ThreadId, forkIO, killThread, myThreadId, threadDelay)
import Control.Concurrent.STM
import Control.Exception (finally)
import Control.Monad (forM, forM_, forever, guard, join, unless, void, when)
import Control.Monad.IO.Class (liftIO)
import Data.Aeson (Object, Value (..), decode, encode, object, (.=))
import qualified Data.Aeson.KeyMap as KeyMap
import qualified Data.ByteArray as BA
import qualified Data.ByteString as BS
import Data.ByteString.Builder (byteString)
import qualified Data.ByteString.Char8 as BS8
import qualified Data.ByteString.Lazy as BL
import Data.Char (isDigit)
import Data.Foldable (toList)
import qualified Data.Map.Strict as Map
import Data.Maybe (catMaybes, fromMaybe)
import Data.Sequence (Seq, (|>))
import qualified Data.Sequence as Seq
import Data.String (fromString)
import qualified Data.Text as T
import qualified Data.Text.Encoding as TE
import qualified Data.Text.Lazy as TL
import Data.Time (defaultTimeLocale, formatTime, getCurrentTime)
import Network.HTTP.Types
import Network.Wai (Middleware, Request, mapResponseHeaders, queryString, requestHeaders)
import qualified Network.Wai.Handler.Warp as Warp
import System.Environment (lookupEnv)
import System.IO (BufferMode (..), hSetBuffering, stdout)
import System.Posix.Signals (Handler (..), installHandler, sigINT, sigTERM)
import Web.Scotty
  ( ActionM, ScottyM, bodyReader, finish, get, json, literal, matchAny, middleware, notFound
  , options, post, request, scottyApp, setHeader, status, stream
  )

-- Settings from the event spec.

serverName, streamPath :: String
serverName = "sse-server"
streamPath = "/events"

defaultPort, retryMs, heartbeatSeconds, historySize, maxClients :: Int
defaultPort = 3014
retryMs = 3000
heartbeatSeconds = 15
historySize = 100
maxClients = 10000

specStreamToken, publishToken :: Maybe BS.ByteString
specStreamToken = Nothing
publishToken = Nothing

publishEnabled, corsAny, corsCredentials :: Bool
publishEnabled = True
corsAny = True
corsCredentials = False

corsOrigins :: [BS.ByteString]
corsOrigins = ["*"]

-- | Events sent on a timer: name, period in ms, data fields.
timedEvents :: [(T.Text, Int, Object)]
timedEvents =
  [ ("clock", 1000, fields "{\"source\":\"server-clock\",\"timezone\":\"UTC\"}")
  , ("stock-price", 2000, fields "{\"symbol\":\"ACME\",\"price\":128.42,\"currency\":\"USD\",\"exchange\":\"NASDAQ\"}")
  ]
  where
    fields :: BL.ByteString -> Object
    fields = fromMaybe KeyMap.empty . decode

maxBody, queueFrames :: Int
maxBody = 64 * 1024
queueFrames = 256

-- Shared state. Publishing, joining and leaving are STM transactions, so a client that
-- joins gets the history and every later event exactly once.

data Client = Client
  { queue :: TBQueue BS.ByteString
  , dropped :: TVar Bool
  , thread :: ThreadId
  }

data Hub = Hub
  { lastId :: TVar Int
  , history :: TVar (Seq (Int, BS.ByteString))
  , clients :: TVar (Map.Map Int Client)
  , nextKey :: TVar Int
  , closing :: TVar Bool
  }

newHub :: IO Hub
newHub = Hub <$> newTVarIO 0 <*> newTVarIO Seq.empty <*> newTVarIO Map.empty <*> newTVarIO 0 <*> newTVarIO False

-- | Queue a frame for every client. A full queue means the client stopped reading: it is
-- dropped, and returned so that its connection can be closed.
deliver :: Hub -> BS.ByteString -> STM [Client]
deliver hub frame = do
  current <- readTVar (clients hub)
  fmap catMaybes . forM (Map.toList current) $ \(key, client) -> do
    full <- isFullTBQueue (queue client)
    if full
      then do
        modifyTVar' (clients hub) (Map.delete key)
        writeTVar (dropped client) True
        pure (Just client)
      else Nothing <$ writeTBQueue (queue client) frame

-- | A dropped client's thread is blocked writing to a socket nobody reads; killing it makes
-- Warp close the connection.
hangUp :: [Client] -> IO ()
hangUp = mapM_ (void . forkIO . killThread . thread)

publish :: Hub -> T.Text -> T.Text -> IO Int
publish hub event text = do
  (eventId, slow) <- atomically $ do
    eventId <- stateTVar (lastId hub) (\n -> (n + 1, n + 1))
    let frame = eventFrame eventId event text
    when (historySize > 0) $
      modifyTVar' (history hub) (\kept -> Seq.drop (Seq.length kept + 1 - historySize) (kept |> (eventId, frame)))
    (,) eventId <$> deliver hub frame
  hangUp slow
  pure eventId

eventFrame :: Int -> T.Text -> T.Text -> BS.ByteString
eventFrame eventId event text =
  TE.encodeUtf8 . T.concat $
    ["id: ", T.pack (show eventId), "\nevent: ", event, "\n"] ++ ["data: " <> line <> "\n" | line <- dataLines] ++ ["\n"]
  where
    dataLines = T.splitOn "\n" (T.replace "\r" "\n" (T.replace "\r\n" "\n" text))

-- | A string is sent as its text, any other JSON value as compact JSON.
dataText :: Value -> T.Text
dataText (String text) = text
dataText value = TE.decodeUtf8 (BL.toStrict (encode value))

-- | Join: the kept events after `since` and a place in the broadcast, or Nothing when full.
subscribe :: Hub -> ThreadId -> Maybe Integer -> STM (Maybe (Int, Client, [BS.ByteString]))
subscribe hub tid since = do
  current <- readTVar (clients hub)
  if Map.size current >= maxClients
    then pure Nothing
    else do
      key <- stateTVar (nextKey hub) (\n -> (n, n + 1))
      client <- Client <$> newTBQueue (fromIntegral queueFrames) <*> newTVar False <*> pure tid
      writeTVar (clients hub) (Map.insert key client current)
      kept <- readTVar (history hub)
      let replay = maybe [] (\n -> [frame | (i, frame) <- toList kept, toInteger i > n]) since
      pure (Just (key, client, replay))

leave :: Hub -> Int -> IO ()
leave hub key = atomically (modifyTVar' (clients hub) (Map.delete key))

-- | The next frame for a client, or Nothing once it is dropped or the server is closing.
nextFrame :: Hub -> Client -> STM (Maybe BS.ByteString)
nextFrame hub client = (Nothing <$ (check =<< stopping)) `orElse` (Just <$> readTBQueue (queue client))
  where
    stopping = (||) <$> readTVar (dropped client) <*> readTVar (closing hub)

-- HTTP

-- | `Last-Event-ID`, else `?lastEventId=`, when it is 1-1024 ASCII digits.
resumeFrom :: Request -> Maybe Integer
resumeFrom req = do
  raw <- lookup "Last-Event-ID" (requestHeaders req) <|> join (lookup "lastEventId" (queryString req))
  guard (BS.length raw <= 1024 && not (BS.null raw) && BS8.all isDigit raw)
  fst <$> BS8.readInteger raw

bearer :: Request -> Maybe BS.ByteString
bearer req = lookup hAuthorization (requestHeaders req) >>= BS.stripPrefix "Bearer "

-- | Compares in constant time (for equal lengths).
sameSecret :: BS.ByteString -> BS.ByteString -> Bool
sameSecret = BA.constEq

failWith :: Status -> T.Text -> ActionM a
failWith code message = status code >> json (object ["error" .= message]) >> finish

readAtMost :: Int -> IO BS.ByteString -> IO (Maybe BL.ByteString)
readAtMost limit next = go 0 []
  where
    go size chunks = do
      chunk <- next
      let size' = size + BS.length chunk
      if
        | BS.null chunk -> pure (Just (BL.fromChunks (reverse chunks)))
        | size' > limit -> pure Nothing
        | otherwise -> go size' (chunk : chunks)

cors :: Middleware
cors app req respond = app req (respond . mapResponseHeaders (++ corsHeaders (lookup "Origin" (requestHeaders req))))
  where
    corsHeaders origin
      | corsAny = [("Access-Control-Allow-Origin", "*")]
      | Just o <- origin, o `elem` corsOrigins =
          [("Access-Control-Allow-Origin", o), ("Vary", "Origin")] ++ [("Access-Control-Allow-Credentials", "true") | corsCredentials]
      | otherwise = [("Vary", "Origin")]

preflight :: ActionM ()
preflight = do
  setHeader "Access-Control-Allow-Methods" "GET, POST, OPTIONS"
  setHeader "Access-Control-Allow-Headers" "Last-Event-ID, Cache-Control, Content-Type, Authorization"
  setHeader "Access-Control-Max-Age" "86400"
  status status204

notAllowed :: TL.Text -> ActionM ()
notAllowed allow = setHeader "Allow" allow >> failWith status405 "method not allowed"

routes :: Hub -> Maybe BS.ByteString -> ScottyM ()
routes hub streamToken = do
  middleware cors

  get (literal streamPath) $ do
    req <- request
    forM_ streamToken $ \token ->
      unless (any (sameSecret token) (catMaybes [bearer req, join (lookup "token" (queryString req))])) $
        failWith status401 "unauthorized"
    -- Warp runs the streaming body on this same thread.
    tid <- liftIO myThreadId
    joined <- liftIO . atomically $ subscribe hub tid (resumeFrom req)
    case joined of
      Nothing -> setHeader "Retry-After" "1" >> failWith status503 "too many clients"
      Just (key, client, replay) -> do
        -- Scotty's `stream` sets no Content-Type of its own.
        setHeader "Content-Type" "text/event-stream; charset=utf-8"
        setHeader "Cache-Control" "no-store"
        setHeader "X-Accel-Buffering" "no"
        stream $ \write flush -> do
          let send frame = write (byteString frame) >> flush
              loop = atomically (nextFrame hub client) >>= mapM_ (\frame -> send frame >> loop)
          -- A client that went away makes write or flush throw: at the next event or heartbeat.
          (send (BS.concat (retryFrame : replay)) >> loop) `finally` leave hub key
  options (literal streamPath) preflight
  matchAny (literal streamPath) (notAllowed "GET, OPTIONS")

  get "/health" $ do
    count <- liftIO (Map.size <$> readTVarIO (clients hub))
    json (object ["status" .= ("ok" :: T.Text), "clients" .= count])
  matchAny "/health" (notAllowed "GET")

  when publishEnabled $ do
    post "/publish" $ do
      req <- request
      forM_ publishToken $ \token ->
        unless (maybe False (sameSecret token) (bearer req)) $ failWith status401 "unauthorized"
      raw <- liftIO . readAtMost maxBody =<< bodyReader
      body <- maybe (failWith status413 "body over 64 KiB") pure raw
      fields <- case decode body of
        Just (Object fields) -> pure fields
        Just _ -> failWith status400 "body must be a JSON object"
        Nothing -> failWith status400 "body is not JSON"
      event <- case KeyMap.lookup "event" fields of
        Nothing -> pure "message"
        Just (String name) | validName name -> pure name
        Just _ -> failWith status400 "event must be a string of 1-64 characters without line breaks"
      eventId <- liftIO (publish hub event (dataText (fromMaybe Null (KeyMap.lookup "data" fields))))
      status status202
      json (object ["id" .= eventId])
    options "/publish" preflight
    matchAny "/publish" (notAllowed "POST, OPTIONS")

  notFound (failWith status404 "not found")
  where
    retryFrame = BS8.pack (if retryMs > 0 then "retry: " ++ show retryMs ++ "\n\n" else ": connected\n\n")
    validName name = not (T.null name) && T.length name <= 64 && not (T.any (`elem` ['\r', '\n']) name)

main :: IO ()
main = do
  hSetBuffering stdout LineBuffering
  port <- maybe defaultPort read <$> lookupEnv "PORT"
  host <- fromMaybe "0.0.0.0" <$> lookupEnv "HOST"
  envToken <- lookupEnv "SSE_TOKEN"
  let streamToken = case envToken of
        Just token | not (null token) -> Just (TE.encodeUtf8 (T.pack token))
        _ -> specStreamToken
  hub <- newHub

  forM_ timedEvents $ \(event, every, fields) -> forkIO . forever $ do
    threadDelay (every * 1000)
    now <- getCurrentTime
    let stamp = T.pack (formatTime defaultTimeLocale "%Y-%m-%dT%H:%M:%S%03QZ" now)
    void (publish hub event (dataText (Object (KeyMap.insert "timestamp" (String stamp) fields))))
  when (heartbeatSeconds > 0) . void . forkIO . forever $ do
    threadDelay (heartbeatSeconds * 1000000)
    hangUp =<< atomically (deliver hub ": heartbeat\n\n")

  app <- scottyApp (routes hub streamToken)
  -- On SIGTERM or SIGINT: close the listening socket, end every stream; runSettings returns
  -- once the connections are done (or after the grace period).
  let onSignal closeSocket = forM_ [sigTERM, sigINT] $ \signal ->
        installHandler signal (Catch (atomically (writeTVar (closing hub) True) >> closeSocket)) Nothing
      settings =
        Warp.setPort port
          . Warp.setHost (fromString host)
          . Warp.setBeforeMainLoop (putStrLn (serverName ++ " listening on http://" ++ host ++ ":" ++ show port))
          . Warp.setInstallShutdownHandler (void . onSignal)
          . Warp.setGracefulShutdownTimeout (Just 2)
          $ Warp.defaultSettings
  Warp.runSettings settings app
