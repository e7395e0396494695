/// The OpenAPI 3.1 document `GET /openapi.json` serves. `ShopTests` checks that its paths and
/// methods are the router's routes, and the schema fuzzer checks the responses against it.
enum ShopOpenAPI {
    static let document = #"""
        {
          "openapi": "3.1.0",
          "info": {
            "title": "unrace serve: the reference shop",
            "version": "1.0.0",
            "description": "Idempotent order creation (Idempotency-Key, draft-ietf-httpapi-idempotency-key-header) and products with ETag / If-Match (RFC 9110). Errors are RFC 9457 problem details."
          },
          "paths": {
            "/health": {
              "get": {
                "operationId": "health",
                "responses": {
                  "200": { "description": "The server runs and its database takes writes.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Health" } } } },
                  "503": { "$ref": "#/components/responses/Problem" }
                }
              }
            },
            "/metrics": {
              "get": {
                "operationId": "metrics",
                "responses": {
                  "200": { "description": "The shop's counters in the Prometheus text format: claims by result, fenced writes, queue deliveries and dead letters.", "content": { "text/plain": { "schema": { "type": "string" } } } }
                }
              }
            },
            "/openapi.json": {
              "get": {
                "operationId": "openapi",
                "responses": { "200": { "description": "This document.", "content": { "application/json": { "schema": { "type": "object" } } } } }
              }
            },
            "/orders": {
              "post": {
                "operationId": "createOrder",
                "parameters": [
                  { "name": "Idempotency-Key", "in": "header", "required": true, "schema": { "type": "string", "minLength": 1, "maxLength": 255 },
                    "description": "A key unique to this order attempt; retries send the same key. A quoted sf-string or a bare value." },
                  { "$ref": "#/components/parameters/ClientId" }
                ],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/OrderRequest" } } } },
                "responses": {
                  "201": {
                    "description": "The order was created (or, with Idempotent-Replayed: true, this is the stored response of the first request with this key).",
                    "headers": {
                      "Location": { "schema": { "type": "string" } },
                      "Idempotent-Replayed": { "schema": { "type": "string", "enum": ["true"] } },
                      "Idempotency-Key-Retention": { "schema": { "type": "string" } }
                    },
                    "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Order" } } },
                    "links": { "GetOrder": { "operationId": "getOrder", "parameters": { "id": "$response.body#/id" } } }
                  },
                  "400": { "$ref": "#/components/responses/Problem" },
                  "404": { "$ref": "#/components/responses/Problem" },
                  "409": { "$ref": "#/components/responses/Problem" },
                  "413": { "$ref": "#/components/responses/Problem" },
                  "422": { "$ref": "#/components/responses/Problem" }
                }
              }
            },
            "/orders/{id}": {
              "get": {
                "operationId": "getOrder",
                "parameters": [ { "name": "id", "in": "path", "required": true, "schema": { "type": "string" } } ],
                "responses": {
                  "200": { "description": "The order.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Order" } } } },
                  "404": { "$ref": "#/components/responses/Problem" }
                }
              }
            },
            "/payments/{id}/capture": {
              "post": {
                "operationId": "capturePayment",
                "description": "Charges the order at the payment provider once: keyed by the order, with an idempotency key derived from the operation sent to the provider.",
                "parameters": [ { "name": "id", "in": "path", "required": true, "schema": { "type": "string" } } ],
                "responses": {
                  "200": { "description": "The capture (the same on every retry).", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Capture" } } } },
                  "404": { "$ref": "#/components/responses/Problem" },
                  "409": { "$ref": "#/components/responses/Problem" },
                  "502": { "$ref": "#/components/responses/Problem" },
                  "503": { "$ref": "#/components/responses/Problem" }
                }
              }
            },
            "/wallets/{id}": {
              "put": {
                "operationId": "openWallet",
                "parameters": [ { "$ref": "#/components/parameters/WalletId" } ],
                "responses": {
                  "200": { "$ref": "#/components/responses/Wallet" },
                  "201": { "$ref": "#/components/responses/Wallet" },
                  "400": { "$ref": "#/components/responses/Problem" },
                  "409": { "$ref": "#/components/responses/Problem" }
                }
              },
              "get": {
                "operationId": "getWallet",
                "parameters": [
                  { "$ref": "#/components/parameters/WalletId" },
                  { "name": "If-None-Match", "in": "header", "required": false, "schema": { "type": "string" } }
                ],
                "responses": {
                  "200": { "$ref": "#/components/responses/Wallet" },
                  "304": { "description": "Unchanged since the ETag named.", "headers": { "ETag": { "schema": { "type": "string" } } } },
                  "400": { "$ref": "#/components/responses/Problem" },
                  "404": { "$ref": "#/components/responses/Problem" }
                }
              }
            },
            "/wallets/transfers": {
              "post": {
                "operationId": "transfer",
                "description": "One ledger transfer; its id is the idempotency key (a repeat answers exists and moves nothing). Fund a wallet from the account bank.",
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/TransferRequest" } } } },
                "responses": {
                  "200": { "$ref": "#/components/responses/Transfer" },
                  "201": { "$ref": "#/components/responses/Transfer" },
                  "400": { "$ref": "#/components/responses/Problem" },
                  "404": { "$ref": "#/components/responses/Problem" },
                  "409": { "$ref": "#/components/responses/Problem" },
                  "413": { "$ref": "#/components/responses/Problem" }
                }
              }
            },
            "/seats/{show}/holds": {
              "post": {
                "operationId": "holdSeats",
                "parameters": [ { "name": "show", "in": "path", "required": true, "schema": { "type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$" } } ],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/HoldRequest" } } } },
                "responses": {
                  "200": { "$ref": "#/components/responses/Hold" },
                  "201": { "$ref": "#/components/responses/Hold" },
                  "400": { "$ref": "#/components/responses/Problem" },
                  "404": { "$ref": "#/components/responses/Problem" },
                  "409": { "$ref": "#/components/responses/Problem" },
                  "413": { "$ref": "#/components/responses/Problem" }
                }
              }
            },
            "/seats/holds/{key}/confirm": {
              "post": {
                "operationId": "confirmHold",
                "parameters": [ { "$ref": "#/components/parameters/HoldKey" } ],
                "responses": {
                  "200": { "$ref": "#/components/responses/Hold" },
                  "400": { "$ref": "#/components/responses/Problem" },
                  "404": { "$ref": "#/components/responses/Problem" },
                  "409": { "$ref": "#/components/responses/Problem" }
                }
              }
            },
            "/seats/holds/{key}/release": {
              "post": {
                "operationId": "releaseHold",
                "parameters": [ { "$ref": "#/components/parameters/HoldKey" } ],
                "responses": {
                  "200": { "$ref": "#/components/responses/Hold" },
                  "400": { "$ref": "#/components/responses/Problem" },
                  "404": { "$ref": "#/components/responses/Problem" },
                  "409": { "$ref": "#/components/responses/Problem" }
                }
              }
            },
            "/events": {
              "post": {
                "operationId": "receiveEvent",
                "description": "An order event from another service, in any order and possibly repeated; applied once per id, per order in sequence order.",
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Event" } } } },
                "responses": {
                  "202": { "description": "What the inbox did.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/EventOutcome" } } } },
                  "400": { "$ref": "#/components/responses/Problem" },
                  "409": { "$ref": "#/components/responses/Problem" },
                  "413": { "$ref": "#/components/responses/Problem" },
                  "503": { "$ref": "#/components/responses/Problem" }
                }
              }
            },
            "/events/orders/{order}": {
              "get": {
                "operationId": "getFulfilment",
                "parameters": [ { "name": "order", "in": "path", "required": true, "schema": { "type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$" } } ],
                "responses": {
                  "200": { "description": "The order's state and last applied sequence.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Fulfilment" } } } },
                  "400": { "$ref": "#/components/responses/Problem" }
                }
              }
            },
            "/outbox": {
              "get": {
                "operationId": "getOutbox",
                "responses": { "200": { "description": "The order queue the outbox feeds: all messages, those waiting for a worker, the dead-lettered.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Outbox" } } } } }
              }
            },
            "/products/{sku}": {
              "get": {
                "operationId": "getProduct",
                "parameters": [
                  { "$ref": "#/components/parameters/Sku" },
                  { "name": "If-None-Match", "in": "header", "required": false, "schema": { "type": "string" }, "description": "ETags the client holds: 304 when one names the current version (weak comparison)." }
                ],
                "responses": {
                  "200": { "description": "The product; ETag is its version.", "headers": { "ETag": { "schema": { "type": "string" } } },
                           "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ProductResponse" } } } },
                  "304": { "description": "Not modified: If-None-Match names the current version.", "headers": { "ETag": { "schema": { "type": "string" } } } },
                  "400": { "$ref": "#/components/responses/Problem" },
                  "404": { "$ref": "#/components/responses/Problem" }
                }
              },
              "put": {
                "operationId": "putProduct",
                "parameters": [
                  { "$ref": "#/components/parameters/Sku" },
                  { "name": "If-Match", "in": "header", "required": false, "schema": { "type": "string" }, "description": "Required to replace an existing product: its ETag (compare-and-set), or * (it exists; replaced at whatever version)." },
                  { "name": "If-None-Match", "in": "header", "required": false, "schema": { "type": "string" }, "description": "* to create only." }
                ],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Product" } } } },
                "responses": {
                  "200": { "description": "Replaced.", "headers": { "ETag": { "schema": { "type": "string" } } },
                           "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ProductResponse" } } } },
                  "201": { "description": "Created.", "headers": { "ETag": { "schema": { "type": "string" } } },
                           "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ProductResponse" } } } },
                  "400": { "$ref": "#/components/responses/Problem" },
                  "412": { "$ref": "#/components/responses/Problem" },
                  "413": { "$ref": "#/components/responses/Problem" },
                  "428": { "$ref": "#/components/responses/Problem" }
                }
              }
            }
          },
          "components": {
            "parameters": {
              "ClientId": { "name": "X-Client-Id", "in": "header", "required": false, "schema": { "type": "string" },
                            "description": "Whose idempotency keys these are; absent means anonymous." },
              "WalletId": { "name": "id", "in": "path", "required": true, "schema": { "type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$" } },
              "HoldKey": { "name": "key", "in": "path", "required": true, "schema": { "type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$" } },
              "Sku": { "name": "sku", "in": "path", "required": true, "schema": { "type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$" } }
            },
            "responses": {
              "Wallet": { "description": "A wallet; ETag names its totals.", "headers": { "ETag": { "schema": { "type": "string" } } },
                          "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Wallet" } } } },
              "Transfer": { "description": "The transfer's result: created, or exists for a repeat.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/TransferResult" } } } },
              "Hold": { "description": "The hold.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Hold" } } } },
              "Problem": { "description": "RFC 9457 problem details.", "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } } }
            },
            "schemas": {
              "Health": { "type": "object", "required": ["status", "store", "writable"], "properties": { "status": { "type": "string" }, "store": { "type": "string" }, "writable": { "type": "boolean" } } },
              "OrderRequest": {
                "type": "object", "required": ["sku", "quantity"],
                "properties": {
                  "sku": { "type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$" },
                  "quantity": { "type": "integer", "minimum": 1, "maximum": 1000 },
                  "coupon": { "type": "string", "pattern": "^[A-Z0-9]{1,32}$" }
                }
              },
              "Order": {
                "type": "object", "required": ["id", "client", "sku", "quantity"],
                "properties": {
                  "id": { "type": "string" }, "client": { "type": "string" }, "sku": { "type": "string" },
                  "quantity": { "type": "integer" }, "coupon": { "type": "string" }
                }
              },
              "Wallet": {
                "type": "object", "required": ["id", "balanceCents", "pendingDebitsCents", "creditsCents", "debitsCents"],
                "properties": { "id": { "type": "string" }, "balanceCents": { "type": "integer" }, "pendingDebitsCents": { "type": "integer" },
                                "creditsCents": { "type": "integer" }, "debitsCents": { "type": "integer" } }
              },
              "TransferRequest": {
                "type": "object", "required": ["id", "from", "to", "amountCents"],
                "properties": { "id": { "type": "string" }, "from": { "type": "string" }, "to": { "type": "string" },
                                "amountCents": { "type": "integer", "minimum": 1, "maximum": 100000000000 } }
              },
              "TransferResult": { "type": "object", "required": ["id", "result"], "properties": { "id": { "type": "string" }, "result": { "type": "string" } } },
              "HoldRequest": {
                "type": "object", "required": ["key", "seats", "ttlSeconds"],
                "properties": { "key": { "type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$" }, "seats": { "type": "integer", "minimum": 1, "maximum": 100 },
                                "ttlSeconds": { "type": "integer", "minimum": 1, "maximum": 3600 } }
              },
              "Hold": {
                "type": "object", "required": ["key", "show", "seats", "state"],
                "properties": { "key": { "type": "string" }, "show": { "type": "string" }, "seats": { "type": "integer" },
                                "state": { "type": "string", "enum": ["held", "confirmed", "released"] } }
              },
              "Event": {
                "type": "object", "required": ["id", "order", "sequence", "type"],
                "properties": { "id": { "type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$" }, "order": { "type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$" }, "sequence": { "type": "integer" },
                                "type": { "type": "string", "enum": ["OrderCreated", "PaymentCaptured", "OrderShipped", "OrderCancelled"] } }
              },
              "EventOutcome": {
                "type": "object", "required": ["outcome"],
                "properties": { "outcome": { "type": "string", "enum": ["applied", "parked", "duplicate", "stale", "rejected"] }, "detail": { "type": "string" } }
              },
              "Fulfilment": {
                "type": "object", "required": ["order", "state", "head"],
                "properties": { "order": { "type": "string" }, "state": { "type": "string" }, "head": { "type": "integer" } }
              },
              "Outbox": {
                "type": "object", "required": ["messages", "unsent", "dead"],
                "properties": { "messages": { "type": "integer" }, "unsent": { "type": "integer" }, "dead": { "type": "integer" } }
              },
              "Capture": {
                "type": "object", "required": ["orderID", "chargeID", "amountCents"],
                "properties": { "orderID": { "type": "string" }, "chargeID": { "type": "string" }, "amountCents": { "type": "integer" } }
              },
              "Product": {
                "type": "object", "required": ["name", "priceCents"],
                "properties": { "name": { "type": "string", "minLength": 1 }, "priceCents": { "type": "integer", "minimum": 0, "maximum": 100000000 } }
              },
              "ProductResponse": {
                "type": "object", "required": ["sku", "name", "priceCents", "available", "version"],
                "properties": {
                  "sku": { "type": "string" }, "name": { "type": "string" }, "priceCents": { "type": "integer" },
                  "available": { "type": "integer" }, "version": { "type": "integer" }
                }
              },
              "Problem": {
                "type": "object", "required": ["type", "title", "status", "code"],
                "properties": {
                  "type": { "type": "string" }, "title": { "type": "string" }, "status": { "type": "integer" },
                  "detail": { "type": "string" }, "code": { "type": "string" }
                }
              }
            }
          }
        }
        """#
}
