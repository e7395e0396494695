import HTTPTypes
import NIOHTTP1
import Vapor

/// Vapor's HTTP types (from NIOHTTP1) and swift-http-types', which UnraceHTTP's rules speak.
enum HTTPConversions {
    static func fields(_ headers: HTTPHeaders) -> HTTPFields {
        var fields = HTTPFields()
        for (name, value) in headers {
            guard let name = HTTPField.Name(name) else { continue }
            fields.append(HTTPField(name: name, value: value))
        }
        return fields
    }

    static func headers(_ fields: HTTPFields) -> HTTPHeaders {
        HTTPHeaders(fields.map { ($0.name.rawName, $0.value) })
    }

    /// The request head, as the engine reads it: method, path with query, header fields.
    static func head(_ request: Request) -> HTTPRequest {
        HTTPRequest(
            method: HTTPRequest.Method(request.method.rawValue) ?? .get,
            scheme: nil,
            authority: nil,
            path: request.url.string,
            headerFields: fields(request.headers)
        )
    }

    /// A route's status as swift-http-types takes it; one HTTP cannot send (NIO's `.custom` allows
    /// any code) is 500.
    static func status(_ status: HTTPResponseStatus) -> HTTPResponse.Status {
        Int(exactly: status.code).map { .checked(code: $0, reasonPhrase: status.reasonPhrase) } ?? .internalServerError
    }

    static func status(_ status: HTTPResponse.Status) -> HTTPResponseStatus {
        HTTPResponseStatus(statusCode: status.code, reasonPhrase: status.reasonPhrase)
    }
}
